# A 4 KiB firmware image, booted with --firmware: starts at the reset vector in real mode,
# enters 32-bit protected mode, then drives the CFI flash as OVMF does. With an 8 KiB
# variable store at VARS (blocks 0 and 1), it checks that:
#   1. the word at VARS+0x10 tells whether a previous run programmed it (PERSISTED/FRESH);
#   2. programming 0x5A, 0xA5 at VARS+0x10 (0x10 then the byte, then 0xFF) reads back;
#   3. the status register then reads 0x80 (ready);
#   4-5. erasing block 1 (0x20, 0xD0) leaves status 0x80 and the block all 0xFF;
#   6-8. programming a byte of the code region sets the program-error bit, clear status
#        clears it, and the code byte is unchanged; the programmed vars are still there.
# Prints PHYLLOME-FLASH-OK, or PHYLLOME-FLASH-BAD <step> got=<value>, and powers off.
#
# Assembled with `as --32` and `objcopy -O binary -j .text`, never linked: every address
# is a constant plus a difference of labels in .text, so there are no relocations.
        .intel_syntax noprefix
        .set BASE, 0xfffff000        # where the image lies: it ends at 4 GiB
        .set CS_BASE, 0xffff0000     # real-mode CS base at reset
        .set VARS, 0xffffd000        # the variable store, right below the code
        .set PROBE, BASE + 0x800     # a code byte that programming must not change
        .set PROBE_VALUE, 0xa7
        .set STACK, 0x8000           # in RAM
        .set COM1, 0x3f8
        .set PM1_CNT, 0xb004
        .set SLP_S0, 0x2000          # SLP_EN, SLP_TYP 0: power off
        .set STATUS_READY, 0x80
        .set STATUS_PROGRAM_ERROR, 0x10

        # The absolute address of a label in .text.
        .macro ABS reg, label
        mov \reg, BASE + (\label - image_start)
        .endm

        .macro PRINT label
        ABS esi, \label
        call print
        .endm

        .text
image_start:
        .code16
start16:
        cli
        data32 lgdt cs:[(BASE - CS_BASE) + (gdt_ptr - image_start)]
        mov eax, cr0
        or eax, 1
        mov cr0, eax
        # jmp far 0x08:start32, with a 32-bit offset.
        .byte 0x66, 0xea
        .long BASE + (start32 - image_start)
        .word 0x08

        .code32
start32:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov fs, ax
        mov gs, ax
        mov esp, STACK

        # 1: a previous run's bytes?
        cmp word ptr [VARS + 0x10], 0xa55a
        jne 1f
        PRINT persisted
        jmp 2f
1:      PRINT fresh
2:
        # 2: program two bytes as QemuFlashWrite does, then read them back.
        mov byte ptr [VARS + 0x10], 0x10
        mov byte ptr [VARS + 0x10], 0x5a
        mov byte ptr [VARS + 0x11], 0x10
        mov byte ptr [VARS + 0x11], 0xa5
        mov byte ptr [VARS + 0x11], 0xff
        mov bl, 2
        movzx edi, word ptr [VARS + 0x10]
        cmp edi, 0xa55a
        jne bad

        # 3: the status register says ready.
        mov byte ptr [VARS], 0x70
        mov bl, 3
        movzx edi, byte ptr [VARS]
        cmp edi, STATUS_READY
        jne bad
        mov byte ptr [VARS], 0xff

        # 4: erase block 1; status ready.
        mov byte ptr [VARS + 0x1000], 0x20
        mov byte ptr [VARS + 0x1000], 0xd0
        mov byte ptr [VARS + 0x1000], 0x70
        mov bl, 4
        movzx edi, byte ptr [VARS + 0x1000]
        cmp edi, STATUS_READY
        jne bad
        mov byte ptr [VARS + 0x1000], 0xff

        # 5: the block reads erased, first and last dword.
        mov bl, 5
        mov edi, dword ptr [VARS + 0x1000]
        cmp edi, 0xffffffff
        jne bad
        mov edi, dword ptr [VARS + 0x1ffc]
        cmp edi, 0xffffffff
        jne bad

        # 6: program a code byte: refused with the program-error bit. The code is a
        # read-only memory slot, so its reads never reach the device: the status is read
        # in the variable store.
        mov byte ptr [PROBE], 0x10
        mov byte ptr [PROBE], 0x00
        mov byte ptr [VARS], 0x70
        mov bl, 6
        movzx edi, byte ptr [VARS]
        test edi, STATUS_PROGRAM_ERROR
        jz bad

        # 7: clear status clears it; back to read array.
        mov byte ptr [VARS], 0x50
        mov byte ptr [VARS], 0x70
        mov bl, 7
        movzx edi, byte ptr [VARS]
        test edi, STATUS_PROGRAM_ERROR
        jnz bad
        mov byte ptr [VARS], 0xff

        # 8: the code byte is unchanged and the programmed bytes are still there.
        mov bl, 8
        movzx edi, byte ptr [PROBE]
        cmp edi, PROBE_VALUE
        jne bad
        movzx edi, word ptr [VARS + 0x10]
        cmp edi, 0xa55a
        jne bad

        PRINT ok
        jmp poweroff

# Step bl failed; edi holds what was read.
bad:
        PRINT bad_msg
        mov al, bl
        add al, '0'
        mov dx, COM1
        out dx, al
        PRINT got_msg
        mov ecx, 8
        call print_hex
        mov al, 10
        out dx, al

poweroff:
        mov dx, PM1_CNT
        mov ax, SLP_S0
        out dx, ax
3:      hlt
        jmp 3b

# Writes the NUL-terminated string at esi to COM1.
print:
        mov dx, COM1
1:      lodsb
        test al, al
        jz 2f
        out dx, al
        jmp 1b
2:      ret

# Prints the low ecx hex digits of edi, most significant first.
print_hex:
        mov dx, COM1
1:      dec ecx
        mov eax, edi
        shl ecx, 2
        shr eax, cl
        shr ecx, 2
        and eax, 0xf
        cmp al, 10
        jb 2f
        add al, 'a' - 10 - '0'
2:      add al, '0'
        out dx, al
        test ecx, ecx
        jnz 1b
        ret

# The descriptors come with their accessed bit set, as edk2's reset vector has them: the
# GDT is in the read-only flash, where the CPU could not set it (this hangs the vCPU).
        .balign 8
gdt:    .quad 0                      # null
        .quad 0x00cf9b000000ffff     # 0x08: flat 32-bit code
        .quad 0x00cf93000000ffff     # 0x10: flat data
gdt_end:
gdt_ptr:
        .word gdt_end - gdt - 1
        .long BASE + (gdt - image_start)

persisted: .asciz "PHYLLOME-FLASH-PERSISTED\n"
fresh:  .asciz "PHYLLOME-FLASH-FRESH\n"
ok:     .asciz "PHYLLOME-FLASH-OK\n"
bad_msg: .asciz "PHYLLOME-FLASH-BAD "
got_msg: .asciz " got="

        .org 0x800
probe:  .byte PROBE_VALUE

        # The reset vector, 16 bytes below 4 GiB.
        .org 0xff0
        .code16
reset:  jmp start16
        .org 0x1000
