# Writes an ever-increasing counter to a test port, forever: progress is visible on the
# host, so pausing can be observed.
        .include "common64.inc"
        .globl _start
_start:
        xor eax, eax
        mov dx, 0x520
1:      inc eax
        out dx, eax
        jmp 1b
