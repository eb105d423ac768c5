// libFuzzer's driver entry point, declared for Swift. C only because libFuzzer ships no module
// map: it is a C function in libclang_rt.fuzzer, linked by `-sanitize=fuzzer`.
#ifndef CFUZZER_H
#define CFUZZER_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
