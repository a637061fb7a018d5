# Lists the virtio shared memory capabilities on PCI bus 0, as a driver finds them: for
# each virtio function (vendor 1af4) it walks the capability list and prints every
# virtio_pci_cap64 of type 8 (shared memory) with its BAR, region ID and length; then
# PHYLLOME-SHM-DONE.
        .include "common64.inc"
        .include "pci.inc"
        .globl _start
_start:
        xor ebx, ebx                  # slot
slot:   mov eax, ebx
        shl eax, 11
        or eax, 0x80000000
        mov r12d, eax
        call cfg_read
        cmp ax, 0x1af4
        jne next
        mov r13d, eax                 # vendor and device
        lea eax, [r12d + 0x34]
        call cfg_read
        and eax, 0xfc
        mov r14d, eax                 # capability pointer
cap:    test r14d, r14d
        jz next
        lea eax, [r12d + r14d]
        call cfg_read
        mov r15d, eax                 # vndr, next, len, cfg_type
        cmp al, 0x09
        jne follow
        mov ecx, eax
        shr ecx, 24
        cmp ecx, 8
        jne follow
        PRINT found
        mov edi, r13d
        shr edi, 16
        mov ecx, 4
        call print_hex
        PRINT bar
        lea eax, [r12d + r14d + 4]
        call cfg_read
        mov r8d, eax
        movzx edi, al
        mov ecx, 2
        call print_hex
        PRINT id
        mov edi, r8d
        shr edi, 8
        and edi, 0xff
        mov ecx, 2
        call print_hex
        PRINT len
        lea eax, [r12d + r14d + 20]   # length, high half
        call cfg_read
        mov edi, eax
        mov ecx, 8
        call print_hex
        lea eax, [r12d + r14d + 12]   # length, low half
        call cfg_read
        mov edi, eax
        mov ecx, 8
        call print_hex
        PRINT newline
follow: mov r14d, r15d
        shr r14d, 8
        and r14d, 0xfc
        jmp cap
next:   inc ebx
        cmp ebx, 32
        jne slot
        PRINT done
        jmp poweroff

found:   .asciz "PHYLLOME-SHM-CAP device="
bar:     .asciz " bar="
id:      .asciz " id="
len:     .asciz " len="
newline: .asciz "\n"
done:    .asciz "PHYLLOME-SHM-DONE\n"
