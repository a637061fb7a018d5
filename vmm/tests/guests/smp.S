# The boot vCPU wakes the second one with INIT and SIPI through its local APIC. The
# second vCPU starts in real mode at 0x3000, prints its APIC ID (from CPUID) and raises
# a flag; the first waits for the flag and powers off.
        .include "common64.inc"
        .set TRAMPOLINE, 0x3000
        .set FLAG, 0x3800
        .globl _start
_start:
        call mask_pic
        lea rsi, [rip + tramp_start]
        mov rdi, TRAMPOLINE
        mov rcx, tramp_end - tramp_start
        rep movsb
        mov rdi, FLAG
        mov byte ptr [rdi], 0
        mov rdi, 0xfee000f0
        mov dword ptr [rdi], 0x1ff
        mov rdi, 0xfee00310            # ICR high: destination APIC ID 1
        mov dword ptr [rdi], 0x01000000
        mov rdi, 0xfee00300            # ICR low: INIT, assert
        mov dword ptr [rdi], 0x00004500
        mov rcx, 100000
1:      pause
        loop 1b
        mov rdi, 0xfee00310
        mov dword ptr [rdi], 0x01000000
        mov rdi, 0xfee00300            # ICR low: start-up, vector 0x03 (0x3000)
        mov dword ptr [rdi], 0x00004603
        mov rcx, 0x40000000
2:      mov rdi, FLAG
        cmp byte ptr [rdi], 1
        je up
        pause
        dec rcx
        jnz 2b
        PRINT no_ap
        jmp poweroff
up:     PRINT bsp_saw
        jmp poweroff

no_ap:   .asciz "PHYLLOME-AP-TIMEOUT\n"
bsp_saw: .asciz "PHYLLOME-BSP-SAW-AP\n"

        .code16
tramp_start:
        cli
        xor ax, ax
        mov ds, ax
        mov si, TRAMPOLINE + (tramp_msg - tramp_start)
        mov dx, 0x3f8
3:      lodsb
        test al, al
        jz 4f
        out dx, al
        jmp 3b
4:      mov eax, 1
        cpuid
        shr ebx, 24
        mov dx, 0x3f8                  # cpuid clobbered edx
        mov al, bl
        add al, '0'
        out dx, al
        mov al, 10
        out dx, al
        mov byte ptr [FLAG], 1
5:      hlt
        jmp 5b
tramp_msg:
        .asciz "PHYLLOME-AP-ALIVE apic="
tramp_end:
        .code64
