import CordonScanCLI
#if canImport(Glibc)
import Glibc
#endif

// Archive member names are UTF-8 (a zip's flag 0x800, pax headers); libarchive converts them
// through the C library's locale, and in the "C" locale it fails on any non-ASCII name. glibc
// has C.UTF-8 built in, so this holds inside a sandbox's minimal root too.
_ = setlocale(LC_CTYPE, "C.UTF-8")
ScanToolCommand.main()
