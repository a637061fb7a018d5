# A 4 KiB firmware image, booted with --firmware, that sets up QEMU's ramfb as OVMF's
# QemuRamfbDxe does: it finds etc/ramfb in the fw_cfg directory (through the ports), writes
# the framebuffer's description to it by fw_cfg DMA (big-endian: address, "XR24", flags,
# width, height, stride), fills the 64x48 framebuffer at FB with one colour, says
# PHYLLOME-RAMFB-SET and waits. Real mode throughout: everything it touches is below 1 MiB.
#
# Assembled with `as --32` and `objcopy -O binary -j .text`, never linked: every address
# is a constant plus a difference of labels in .text, so there are no relocations.
        .intel_syntax noprefix
        .set COM1, 0x3f8
        .set FW_SEL, 0x510
        .set FW_DATA, 0x511
        .set FW_DMA_HI, 0x514
        .set FW_DMA_LO, 0x518
        .set CS_OFFSET, 0xf000       # the image's offset from the reset-time CS base
        .set ENTRY, 0x1000           # one directory entry, read here
        .set CTL, 0x1100             # the DMA control block
        .set CFG, 0x1200             # the ramfb description
        .set FB, 0x20000             # the framebuffer (segment 0x2000)
        .set WIDTH, 64
        .set HEIGHT, 48
        .set COLOUR, 0x00ff8000      # XRGB: orange

        .text
image_start:
        .code16
start16:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x8000
        mov dx, FW_SEL               # the directory: a big-endian count, then entries
        mov ax, 0x19
        out dx, ax
        mov dx, FW_DATA
        xor bp, bp
        xor bx, bx
        mov cx, 4
1:      in al, dx
        shl bp, 8
        mov bl, al
        or bp, bx                    # (bh is zero: bx came from al only)
        loop 1b
next:   test bp, bp
        jz missing
        dec bp
        mov di, ENTRY                # read 64 bytes of the entry
        mov cx, 64
        mov dx, FW_DATA
2:      in al, dx
        stosb
        loop 2b
        lea si, [name - image_start + CS_OFFSET]
        mov di, ENTRY + 8
        mov cx, 10                   # "etc/ramfb" and its zero
3:      mov al, cs:[si]
        cmp al, [di]
        jne next
        inc si
        inc di
        loop 3b
        mov bx, [ENTRY + 4]          # its selector, big-endian
        xchg bl, bh

        # The description, big-endian.
        mov dword ptr [CFG], 0               # address, high half
        mov dword ptr [CFG + 4], 0x00000200  # address, low half: 0x00020000 (FB)
        mov dword ptr [CFG + 8], 0x58523234  # fourcc "XR24" (0x34325258), big-endian
        mov dword ptr [CFG + 12], 0
        mov dword ptr [CFG + 16], 0x40000000 # width 64
        mov dword ptr [CFG + 20], 0x30000000 # height 48
        mov dword ptr [CFG + 24], 0x00010000 # stride 256

        # DMA: select the file and write 28 bytes from CFG.
        movzx eax, bx
        shl eax, 16
        or eax, 0x18                 # SELECT | WRITE
        bswap eax
        mov [CTL], eax
        mov dword ptr [CTL + 4], 0x1c000000  # length 28
        mov dword ptr [CTL + 8], 0           # address, high half
        mov dword ptr [CTL + 12], 0x00120000 # address, low half: CFG (0x1200)
        mov dx, FW_DMA_HI
        xor eax, eax
        out dx, eax
        mov dx, FW_DMA_LO
        mov eax, 0x00110000          # CTL (0x1100), big-endian
        out dx, eax
        cmp dword ptr [CTL], 0       # done without error?
        jne failed

        mov ax, FB >> 4              # fill the framebuffer
        mov es, ax
        xor di, di
        mov eax, COLOUR
        mov cx, WIDTH * HEIGHT
        rep stosd
        lea si, [set - image_start + CS_OFFSET]
        call print
4:      hlt
        jmp 4b

missing:
        lea si, [no_file - image_start + CS_OFFSET]
        call print
        jmp 4b
failed:
        lea si, [dma_failed - image_start + CS_OFFSET]
        call print
        jmp 4b

        .include "real16.inc"

name:       .asciz "etc/ramfb"
set:        .asciz "PHYLLOME-RAMFB-SET\n"
no_file:    .asciz "PHYLLOME-RAMFB-NO-FILE\n"
dma_failed: .asciz "PHYLLOME-RAMFB-DMA-FAILED\n"

        # The reset vector, 16 bytes below 4 GiB.
        .org 0xff0
reset:  jmp start16
        .org 0x1000
