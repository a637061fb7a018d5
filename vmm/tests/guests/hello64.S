# Linux 64-bit boot protocol entry: checks that rsi points at a zero page with "HdrS",
# prints a marker and powers off.
        .include "common64.inc"
        .globl _start
_start:
        cmp rsi, 0x7000
        jne bad
        cmp dword ptr [rsi + 0x202], 0x53726448
        jne bad
        PRINT ok
        jmp poweroff
bad:
        PRINT fail
        jmp poweroff
ok:     .asciz "PHYLLOME-LONG-MODE-OK\n"
fail:   .asciz "PHYLLOME-BAD-ZERO-PAGE\n"
