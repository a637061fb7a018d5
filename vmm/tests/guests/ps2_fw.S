# A 4 KiB firmware image, booted with --firmware, that reads the PS/2 keyboard as boot
# firmware does, in real mode and by polling: it says PHYLLOME-PS2-READY, then prints each
# byte the i8042 hands it (PHYLLOME-PS2 <hex>) until it sees the release of the A key
# (0x9e, scancode set 1 through the controller's translation), then powers off.
#
# Assembled with `as --32` and `objcopy -O binary -j .text`, never linked: every address
# is a constant plus a difference of labels in .text, so there are no relocations.
        .intel_syntax noprefix
        .set COM1, 0x3f8
        .set PM1_CNT, 0xb004
        .set SLP_S0, 0x2000          # SLP_EN, SLP_TYP 0: power off
        .set CS_OFFSET, 0xf000       # the image's offset from the reset-time CS base

        .text
image_start:
        .code16
start16:
        cli
        xor ax, ax
        mov ss, ax
        mov sp, 0x8000
        lea si, [ready - image_start + CS_OFFSET]
        call print
poll:   in al, 0x64                  # status: output buffer full?
        test al, 1
        jz poll
        in al, 0x60
        mov bl, al
        lea si, [byte_msg - image_start + CS_OFFSET]
        call print
        mov al, bl
        shr al, 4
        call hex_digit
        mov al, bl
        and al, 0xf
        call hex_digit
        mov al, 10
        mov dx, COM1
        out dx, al
        cmp bl, 0x9e
        jne poll
        mov dx, PM1_CNT
        mov ax, SLP_S0
        out dx, ax
1:      hlt
        jmp 1b

        .include "real16.inc"

# Prints the low nibble of al as a hex digit.
hex_digit:
        cmp al, 10
        jb 1f
        add al, 'a' - 10 - '0'
1:      add al, '0'
        mov dx, COM1
        out dx, al
        ret

ready:    .asciz "PHYLLOME-PS2-READY\n"
byte_msg: .asciz "PHYLLOME-PS2 "

        # The reset vector, 16 bytes below 4 GiB.
        .org 0xff0
reset:  jmp start16
        .org 0x1000
