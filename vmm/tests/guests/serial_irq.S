# Routes the UART's IRQ 4 through the IOAPIC to vector 0x30, enables the UART's
# "transmitter empty" interrupt and halts; the handler reports in and powers off.
        .include "common64.inc"
        .set VECTOR, 0x30
        .globl _start
_start:
        call mask_pic
        lea rax, [rip + handler]
        lea rdi, [rip + idt + VECTOR * 16]
        mov word ptr [rdi], ax
        mov word ptr [rdi + 2], 0x10   # boot code segment
        mov word ptr [rdi + 4], 0x8e00 # present, DPL 0, interrupt gate
        shr rax, 16
        mov word ptr [rdi + 6], ax
        shr rax, 16
        mov dword ptr [rdi + 8], eax
        mov dword ptr [rdi + 12], 0
        lidt [rip + idtr]
        mov rdi, 0xfee000f0            # LAPIC spurious vector register: enable
        mov dword ptr [rdi], 0x1ff
        mov rdi, 0xfec00000            # IOAPIC: redirection entry for pin 4
        mov dword ptr [rdi], 0x19
        mov dword ptr [rdi + 0x10], 0  # destination APIC 0
        mov dword ptr [rdi], 0x18
        mov dword ptr [rdi + 0x10], VECTOR  # fixed, edge, unmasked
        PRINT armed
        mov dx, 0x3f9                  # IER: transmitter holding register empty
        mov al, 0x02
        out dx, al
        sti
1:      hlt
        jmp 1b

handler:
        mov dx, 0x3f9
        xor al, al
        out dx, al                     # no more UART interrupts
        PRINT got
        mov rdi, 0xfee000b0            # EOI
        mov dword ptr [rdi], 0
        jmp poweroff

armed:  .asciz "PHYLLOME-IRQ-ARMED\n"
got:    .asciz "PHYLLOME-IRQ-HANDLED\n"
        .balign 16
idt:    .fill 256 * 16, 1, 0
idtr:   .word 256 * 16 - 1
        .quad idt
