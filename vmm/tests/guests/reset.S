# Prints a marker, then pulses the i8042 reset line.
        .include "common64.inc"
        .globl _start
_start:
        PRINT msg
        mov al, 0xfe
        out 0x64, al
1:      hlt
        jmp 1b
msg:    .asciz "PHYLLOME-BOOT\n"
