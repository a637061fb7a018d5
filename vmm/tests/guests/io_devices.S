# Exercises port I/O and MMIO: writes to a test port and a test MMIO page, reads both
# back and reports what it read on the serial port.
        .include "common64.inc"
        .set TEST_PORT, 0x520
        .set TEST_MMIO, 0xf0000000
        .globl _start
_start:
        mov dx, TEST_PORT
        mov al, 0xab
        out dx, al                     # 1-byte PIO write
        mov ax, 0x1234
        out dx, ax                     # 2-byte PIO write
        mov rdi, TEST_MMIO
        mov dword ptr [rdi + 0x10], 0xcafef00d
        mov eax, dword ptr [rdi + 0x20]
        cmp eax, 0x20202020            # the test device answers each byte with its offset
        jne bad
        mov dx, TEST_PORT
        in al, dx
        cmp al, 0x00
        jne bad
        PRINT ok
        jmp poweroff
bad:    PRINT fail
        jmp poweroff
ok:     .asciz "PHYLLOME-IO-OK\n"
fail:   .asciz "PHYLLOME-IO-BAD\n"
