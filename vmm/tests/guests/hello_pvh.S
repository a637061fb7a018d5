# PVH entry: 32-bit protected mode, paging off, ebx -> hvm_start_info. Checks the magic,
# prints the command line the VMM passed, and powers off.
        .intel_syntax noprefix
        .code32
        .globl _start
_start:
        mov esp, 0x80000
        cmp dword ptr [ebx], 0x336ec578
        jne bad
        lea esi, [ok]
        call print32
        mov esi, [ebx + 24]            # cmdline_paddr (low half)
        call print32
        mov al, 10
        mov dx, 0x3f8
        out dx, al
        jmp off
bad:
        lea esi, [fail]
        call print32
off:
        mov dx, 0xb004
        mov ax, 0x3400
        out dx, ax
1:      hlt
        jmp 1b

print32:
        mov dx, 0x3f8
2:      lodsb
        test al, al
        jz 3f
        out dx, al
        jmp 2b
3:      ret

ok:     .asciz "PHYLLOME-PVH-OK cmdline="
fail:   .asciz "PHYLLOME-PVH-BAD-START-INFO\n"

        .pushsection .note.Xen, "a", @note
        .align 4
        .long 4                        # name size
        .long 8                        # descriptor size
        .long 18                       # XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .align 4
        .quad _start
        .align 4
        .popsection
