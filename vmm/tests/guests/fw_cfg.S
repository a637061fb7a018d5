# Reads QEMU's fw_cfg as firmware does: the signature and the feature bits through the
# data port, the file directory through the port (looking for etc/table-loader), then that
# file's first command through DMA. Reports what it read on the serial port.
        .include "common64.inc"
        .set FW_SEL, 0x510
        .set FW_DATA, 0x511
        .set FW_DMA_HI, 0x514
        .set FW_DMA_LO, 0x518
        .set CTL, 0x2ff000               # the DMA control block
        .set BUF, 0x300000
        .globl _start
_start:
        xor eax, eax                     # signature
        call select
        mov rdi, BUF
        mov ecx, 4
        call read_port
        cmp dword ptr [BUF], 0x554d4551  # "QEMU"
        jne bad
        mov eax, 1                       # feature bits: DMA?
        call select
        mov rdi, BUF
        mov ecx, 4
        call read_port
        test dword ptr [BUF], 2
        jz bad
        mov dx, FW_DMA_HI                # the DMA register reads "QEMU CFG"
        in eax, dx
        cmp eax, 0x554d4551
        jne bad
        PRINT sig_ok

        mov eax, 0x19                    # the directory: a big-endian count...
        call select
        mov rdi, BUF
        mov ecx, 4
        call read_port
        mov r12d, dword ptr [BUF]
        bswap r12d
        PRINT files
        mov edi, r12d
        mov ecx, 2
        call print_hex
        xor r14d, r14d                   # the loader's selector, once found
next_entry:                              # ...then 64-byte entries
        test r12d, r12d
        jz dir_done
        dec r12d
        mov rdi, BUF + 0x100
        mov ecx, 64
        call read_port
        lea rsi, [rip + loader_name]
        mov rdi, BUF + 0x108
        mov ecx, 17                      # with its terminating zero
        repe cmpsb
        jne next_entry
        movzx r14d, word ptr [BUF + 0x104]
        rol r14w, 8                      # big-endian selector
        jmp next_entry
dir_done:
        PRINT newline
        test r14d, r14d
        jz bad

        mov eax, r14d                    # DMA: select it and read 8 bytes into BUF+0x200
        shl eax, 16
        or eax, 0x0a                     # SELECT | READ
        bswap eax
        mov dword ptr [CTL], eax
        mov dword ptr [CTL + 4], 0x08000000   # length 8, big-endian
        mov dword ptr [CTL + 8], 0             # address, big-endian: high half
        mov eax, BUF + 0x200
        bswap eax
        mov dword ptr [CTL + 12], eax
        mov dword ptr [BUF + 0x200], 0xffffffff
        mov dx, FW_DMA_HI
        xor eax, eax
        out dx, eax
        mov dx, FW_DMA_LO
        mov eax, CTL
        bswap eax
        out dx, eax                      # starts the transfer
        PRINT dma
        mov edi, dword ptr [CTL]         # the control field: 0 when done without error
        mov ecx, 8
        call print_hex
        PRINT command
        mov edi, dword ptr [BUF + 0x200] # the loader's first command (1: ALLOCATE)
        mov ecx, 8
        call print_hex
        PRINT newline
        jmp poweroff
bad:    PRINT fail
        jmp poweroff

# Selects item eax.
select:
        mov dx, FW_SEL
        out dx, ax
        ret

# Reads ecx bytes from the data port to rdi.
read_port:
        mov dx, FW_DATA
1:      in al, dx
        mov byte ptr [rdi], al
        inc rdi
        dec ecx
        jnz 1b
        ret

sig_ok:      .asciz "PHYLLOME-FWCFG-SIGNATURE-OK\n"
files:       .asciz "PHYLLOME-FWCFG-FILES="
dma:         .asciz "PHYLLOME-FWCFG-DMA control="
command:     .asciz " first="
newline:     .asciz "\n"
fail:        .asciz "PHYLLOME-FWCFG-BAD\n"
loader_name: .asciz "etc/table-loader"
