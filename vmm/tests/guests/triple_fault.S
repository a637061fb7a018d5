# Loads an empty IDT and raises an exception: nothing can be delivered, so the CPU
# shuts down (triple fault).
        .include "common64.inc"
        .globl _start
_start:
        PRINT msg
        lidt [rip + empty_idt]
        ud2
1:      jmp 1b
msg:    .asciz "PHYLLOME-ABOUT-TO-CRASH\n"
        .balign 8
empty_idt:
        .word 0
        .quad 0
