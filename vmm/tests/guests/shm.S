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

# eax: configuration address of a 64-bit BAR's low half; returns its address in rax.
bar64:
        mov r8d, eax
        call cfg_read
        and eax, 0xfffffff0
        mov r9d, eax
        lea eax, [r8d + 4]
        call cfg_read
        shl rax, 32
        or rax, r9
        ret

# Identity-maps the GiB holding rdi with 2 MiB pages: the page at rsi becomes its page
# directory and, when nothing maps its 512 GiB yet, the page after it the page-directory-
# pointer table (the VMM's tables map the first 4 GiB; BARs may lie far above, where the
# firmware's 64-bit PCI window is: the top of the address space).
map_1g:
        mov rcx, cr3
        and rcx, ~0xfff
        mov rax, rdi
        shr rax, 39
        and eax, 511
        lea rcx, [rcx + rax * 8]      # its PML4 entry
        mov rdx, [rcx]
        test rdx, 1
        jnz 2f
        push rdi                      # a new, empty PDPT
        push rcx
        lea rdi, [rsi + 0x1000]
        xor eax, eax
        mov ecx, 512
        rep stosq
        pop rcx
        pop rdi
        lea rdx, [rsi + 0x1003]
        mov [rcx], rdx
2:      and rdx, ~0xfff
        mov rax, rdi
        shr rax, 30
        and eax, 511
        lea rcx, [rsi + 3]
        mov [rdx + rax * 8], rcx      # PDPT entry -> the page directory
        mov rax, rdi
        shr rax, 30
        shl rax, 30
        or rax, 0x83                  # present, writable, 2 MiB
        xor ecx, ecx
1:      mov [rsi + rcx * 8], rax
        add rax, 0x200000
        inc ecx
        cmp ecx, 512
        jne 1b
        ret

nodev:  .asciz "PHYLLOME-SHM-NO-DEVICE\n"
zero:   .asciz "PHYLLOME-SHM-UNMAPPED-ZERO\n"
fail:   .asciz "PHYLLOME-SHM-BAD\n"
