# Exercises a virtio shared memory region the way a driver does: finds the test device
# (virtio-pci 1af4:1044) on bus 0, turns on its memory decoding, shows its BARs in the page
# tables, asks the device to map a file into its region (a byte written to its
# configuration), prints what the region then holds and writes into it; then asks for the
# unmap and checks that the region reads zero again.
        .include "common64.inc"
        .include "pci.inc"
        .set PD0, 0x300000            # each with a spare page after it for a PDPT
        .set PD1, 0x302000
        .set AT, 0x2000               # where the device maps its file in the region
        .globl _start
_start:
        xor ebx, ebx
find:   mov eax, ebx
        shl eax, 11
        or eax, 0x80000000
        mov r12d, eax                 # the slot's configuration address, register 0
        call cfg_read
        cmp eax, 0x10441af4
        je found
        inc ebx
        cmp ebx, 32
        jne find
        PRINT nodev
        jmp poweroff
found:
        lea eax, [r12d + 4]           # command: turn on memory decoding
        call cfg_read
        or eax, 2
        mov ecx, eax
        lea eax, [r12d + 4]
        call cfg_write
        lea eax, [r12d + 0x10]        # BAR 0 (64-bit): the virtio registers
        call bar64
        mov r13, rax
        lea eax, [r12d + 0x18]        # BAR 2 (64-bit): the shared memory
        call bar64
        mov r14, rax
        mov rdi, r13
        mov rsi, PD0
        call map_1g
        mov rdi, r14
        mov rsi, PD1
        call map_1g
        mov rax, cr3                  # forget old translations
        mov cr3, rax

        cmp byte ptr [r14 + AT], 0
        jne bad
        mov byte ptr [r13 + 0x2000], 1  # device configuration: map
        lea rsi, [r14 + AT]
        call print
        mov byte ptr [r14 + AT + 9], 's'  # PHYLLOME-sHM: the write reaches the file
        mov byte ptr [r13 + 0x2000], 2  # unmap
        cmp byte ptr [r14 + AT], 0
        jne bad
        mov byte ptr [r13 + 0x2000], 3  # a mapping past the region: refused
        PRINT zero
        jmp poweroff
bad:    PRINT fail
        jmp poweroff

nodev:  .asciz "PHYLLOME-SHM-NO-DEVICE\n"
zero:   .asciz "PHYLLOME-SHM-UNMAPPED-ZERO\n"
fail:   .asciz "PHYLLOME-SHM-BAD\n"
