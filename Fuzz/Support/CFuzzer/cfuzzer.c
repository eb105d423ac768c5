// Declarations only (cfuzzer.h); SwiftPM wants a source file in every C target.
#include "cfuzzer.h"
