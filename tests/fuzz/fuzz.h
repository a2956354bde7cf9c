/* The libFuzzer entry points, declared once for every target and the replay main. */
#ifndef AL_FUZZ_H
#define AL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
