# Enables the ACPI power-button event, says it is ready, waits for the button, then
# acknowledges it and powers off, as an OS's power-button handler would.
        .include "common64.inc"
        .globl _start
_start:
        mov dx, 0x602                  # PM1_EN
        mov ax, 0x100                  # PWRBTN_EN
        out dx, ax
        PRINT ready
        mov dx, 0xb000                 # PM1_STS
1:      in ax, dx
        test ax, 0x100
        jz 1b
        mov ax, 0x100
        out dx, ax                     # acknowledge (write one to clear)
        PRINT pressed
        jmp poweroff
ready:   .asciz "PHYLLOME-WAITING-FOR-BUTTON\n"
pressed: .asciz "PHYLLOME-BUTTON-PRESSED\n"
