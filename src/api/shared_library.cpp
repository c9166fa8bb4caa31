// Anchor of the shared library libpowerret (the whole static core is linked into it). Exports a C
// symbol that loaders can probe with dlsym to tell this library's ABI generation.
extern "C" __attribute__((visibility("default"))) int powerret_abi_version() { return 0; }
