# Moves a virtio device's BAR 0 the way UEFI firmware reassigns BARs, and drives the device
# at its new place: finds the entropy device (virtio-rng, 1af4:1044) on bus 0, turns on its
# memory decoding, finds its common and notify structures through the capability list,
# moves BAR 0 1 MiB up and sets up queue 0 there. Then:
#   1. a buffer is offered and the doorbell rung at the OLD address: the device must not
#      serve it (a doorbell left registered there would);
#   2. with memory decoding off, so that no MMIO exit can reach the device, the doorbell is
#      rung at the NEW address: only the hypervisor's doorbell (KVM ioeventfd) moved there
#      can serve the buffer, which comes back full of entropy;
#   3. BAR 0 is moved onto guest RAM: writes there stay RAM (they read back, a reset
#      written over the status register and a doorbell reach nothing); moved back, the
#      device is still running and serves the next buffer;
#   4. BAR 0 is moved onto the virtio keyboard's BAR 0 (1af4:1052): the machine goes on;
#      moved apart again, both devices answer and the entropy device's doorbell works.
# Each step prints a PHYLLOME-BAR-... line; a failure prints PHYLLOME-BAR-BAD and why.
        .include "common64.inc"
        .include "pci.inc"
        .set PD0, 0x300000            # page directories (each with a spare page after it
        .set PD1, 0x302000            # for a PDPT) for the BARs' GiBs
        .set PD2, 0x304000
        .set QSIZE, 16
        .set DESC, 0x400000           # queue 0: descriptor table,
        .set AVAIL, 0x401000          # available ring
        .set USED, 0x402000           # and used ring
        .set BUF, 0x410000            # 64-byte buffers for the device, 0x100 apart
        .set RAM_BAR, 0x200000        # guest RAM, where BAR 0 must not take over
        .set QUIET, 0x40000000        # TSC ticks a doorbell that must not work is given
        .set LONG, 0x400000000        # TSC ticks a doorbell that must work is given
        .set STATUS, 0x14             # common configuration registers
        .set NUM_QUEUES, 0x12
        .globl _start
_start:
        mov esi, 0x10441af4
        call find
        jz nodevice
        mov r12d, eax                 # the entropy device's configuration address
        call decode_on

        # The capability list: where the common (type 1) and notify (type 2) structures
        # are in BAR 0, and the notify offset multiplier.
        lea eax, [r12d + 0x34]
        call cfg_read
        and eax, 0xfc
        mov r10d, eax
cap:    test r10d, r10d
        jz caps_done
        lea eax, [r12d + r10d]
        call cfg_read                 # vndr, next, len, cfg_type
        mov r11d, eax
        cmp al, 0x09                  # vendor specific: a virtio_pci_cap
        jne follow
        shr eax, 24
        cmp al, 1
        je common_cap
        cmp al, 2
        jne follow
        lea eax, [r12d + r10d + 8]    # notify: its offset in the BAR
        call cfg_read
        mov [rip + notify], eax
        lea eax, [r12d + r10d + 16]   # notify_off_multiplier
        call cfg_read
        mov [rip + multiplier], eax
        jmp follow
common_cap:
        lea eax, [r12d + r10d + 8]    # common: its offset in the BAR
        call cfg_read
        mov [rip + common], eax
follow: mov eax, r11d
        shr eax, 8
        and eax, 0xfc
        mov r10d, eax
        jmp cap
caps_done:
        cmp dword ptr [rip + multiplier], 0
        je nocaps

        lea eax, [r12d + 0x10]        # BAR 0 (64-bit): where the firmware found it
        call bar64
        mov r13, rax                  # OLD
        lea r14, [rax + 0x100000]     # NEW: 1 MiB up, in the same window
        mov rdi, r13                  # both in the page tables (above 4 GiB, where the
        mov rsi, PD0                  # 64-bit PCI window is, nothing maps them yet)
        call map_1g
        mov rdi, r14
        mov rsi, PD1
        call map_1g
        mov rax, cr3                  # forget old translations
        mov cr3, rax

        mov rdi, r14                  # the move
        call set_bar0
        mov eax, [rip + common]
        lea rbx, [r14 + rax]          # rbx: the common configuration at NEW
        lea rbp, [r13 + rax]          # rbp: where it was, at OLD
        movzx eax, word ptr [rbx + NUM_QUEUES]
        cmp eax, 1                    # one queue: the device answers at NEW
        jne moved_bad
        movzx eax, word ptr [rbp + NUM_QUEUES]
        cmp eax, 0xffff               # nothing answers at OLD (all ones)
        jne moved_bad
        PRINT moved

        # Driver set-up at NEW (virtio 1.2, 3.1.1): reset, ACKNOWLEDGE, DRIVER, the
        # VERSION_1 feature, FEATURES_OK, queue 0, DRIVER_OK.
        mov rdi, DESC                 # empty rings
        xor eax, eax
        mov ecx, 0x3000 / 8
        rep stosq
        mov byte ptr [rbx + STATUS], 0
        mov byte ptr [rbx + STATUS], 1
        mov byte ptr [rbx + STATUS], 3
        mov dword ptr [rbx + 0x08], 1 # driver_feature_select: bits 32 to 63
        mov dword ptr [rbx + 0x0c], 1 # VIRTIO_F_VERSION_1
        mov byte ptr [rbx + STATUS], 0xb
        mov al, [rbx + STATUS]
        test al, 8                    # FEATURES_OK stuck: accepted
        jz setup_bad
        mov word ptr [rbx + 0x16], 0  # queue_select
        mov word ptr [rbx + 0x18], QSIZE
        mov dword ptr [rbx + 0x20], DESC
        mov dword ptr [rbx + 0x24], 0
        mov dword ptr [rbx + 0x28], AVAIL
        mov dword ptr [rbx + 0x2c], 0
        mov dword ptr [rbx + 0x30], USED
        mov dword ptr [rbx + 0x34], 0
        movzx eax, word ptr [rbx + 0x1e]  # queue_notify_off
        imul eax, [rip + multiplier]
        add eax, [rip + notify]
        mov r15d, eax                 # r15: queue 0's doorbell, an offset in BAR 0
        mov word ptr [rbx + 0x1c], 1  # queue_enable
        mov byte ptr [rbx + STATUS], 0xf  # DRIVER_OK
        mov al, [rbx + STATUS]
        test al, 0x80                 # FAILED
        jnz setup_bad

        # 1. A buffer, and its doorbell at OLD: nothing may serve it.
        mov rdi, BUF
        call offer
        mov word ptr [r13 + r15], 0
        mov di, 1
        mov rsi, QUIET
        call wait_used
        jnc old_rang
        PRINT old_quiet

        # 2. Memory decoding off: only a doorbell KVM has at NEW serves the buffer.
        call decode_off
        mov word ptr [r14 + r15], 0
        mov di, 1
        mov rsi, LONG
        call wait_used
        jc new_dead
        call decode_on
        cmp dword ptr [USED + 4 + 4], 64  # all 64 bytes written
        jne new_dead
        mov rax, [BUF]                # entropy: not all zero
        or rax, [BUF + 8]
        jz new_dead
        PRINT kicked
        mov edi, [BUF + 4]            # the first 8 bytes, as two dwords
        mov ecx, 8
        call print_hex
        mov edi, [BUF]
        mov ecx, 8
        call print_hex
        PRINT newline

        # 3. BAR 0 onto guest RAM: RAM stays RAM.
        mov rdi, RAM_BAR
        call set_bar0
        mov eax, [rip + common]
        mov byte ptr [RAM_BAR + rax + STATUS], 0  # a reset, had the device got it
        mov dword ptr [RAM_BAR + 0x100], 0x600dcafe
        mov rdi, BUF + 0x100
        call offer
        mov word ptr [RAM_BAR + r15], 0x5a5a      # a doorbell, had the device got it
        mov di, 2
        mov rsi, QUIET
        call wait_used
        jnc ram_bad
        mov eax, [rip + common]
        cmp byte ptr [RAM_BAR + rax + STATUS], 0
        jne ram_bad
        cmp dword ptr [RAM_BAR + 0x100], 0x600dcafe
        jne ram_bad
        cmp word ptr [RAM_BAR + r15], 0x5a5a
        jne ram_bad
        PRINT on_ram
        mov rdi, r14                  # back: the device is still live, its status
        call set_bar0                 # untouched, and the waiting buffer is served
        mov al, [rbx + STATUS]
        cmp al, 0xf
        jne back_bad
        mov word ptr [r14 + r15], 0
        mov di, 2
        mov rsi, LONG
        call wait_used
        jc back_bad
        PRINT back

        # 4. BAR 0 onto the keyboard's BAR 0.
        mov esi, 0x10521af4
        call find
        jz nodevice
        mov [rip + keyboard], eax
        call decode_on_at
        mov eax, [rip + keyboard]
        add eax, 0x10
        call bar64
        mov [rip + keyboard_bar], rax
        mov rdi, rax
        mov rsi, PD2
        call map_1g
        mov rax, cr3
        mov cr3, rax
        mov rdi, [rip + keyboard_bar]
        call set_bar0
        mov rax, [rip + keyboard_bar] # one of the two answers there; the machine runs on
        mov ecx, [rip + common]
        movzx edi, word ptr [rax + rcx + NUM_QUEUES]
        mov rax, [rip + keyboard_bar]
        mov word ptr [rax + r15], 0   # and a doorbell there reaches at most the keyboard
        PRINT overlap
        mov ecx, 4
        call print_hex
        PRINT newline
        mov rdi, r14                  # apart again
        call set_bar0
        movzx eax, word ptr [rbx + NUM_QUEUES]
        cmp eax, 1                    # the entropy device at NEW
        jne apart_bad
        mov rax, [rip + keyboard_bar]
        mov ecx, [rip + common]
        movzx eax, word ptr [rax + rcx + NUM_QUEUES]
        cmp eax, 2                    # the keyboard (two queues) at its own place
        jne apart_bad
        mov rdi, BUF + 0x200          # and the entropy device's doorbell is KVM's again
        call offer
        call decode_off
        mov word ptr [r14 + r15], 0
        mov di, 3
        mov rsi, LONG
        call wait_used
        jc apart_bad
        call decode_on
        PRINT apart
        PRINT done
        jmp poweroff

nodevice:
        PRINT no_device
        jmp poweroff
nocaps: lea rsi, [rip + why_caps]
        jmp bad
moved_bad:
        lea rsi, [rip + why_moved]
        jmp bad
setup_bad:
        lea rsi, [rip + why_setup]
        jmp bad
old_rang:
        lea rsi, [rip + why_old]
        jmp bad
new_dead:
        lea rsi, [rip + why_new]
        jmp bad
ram_bad:
        lea rsi, [rip + why_ram]
        jmp bad
back_bad:
        lea rsi, [rip + why_back]
        jmp bad
apart_bad:
        lea rsi, [rip + why_apart]
bad:    push rsi
        PRINT fail
        pop rsi
        call print
        jmp poweroff

# Finds the function whose vendor and device registers read esi on bus 0; returns its
# configuration address in eax, with ZF set if there is none.
find:
        xor r8d, r8d
1:      mov eax, r8d
        shl eax, 11
        or eax, 0x80000000
        mov r9d, eax
        call cfg_read
        cmp eax, esi
        je 2f
        inc r8d
        cmp r8d, 32
        jne 1b
        xor eax, eax                  # ZF: none
        ret
2:      mov eax, r9d                  # not zero: ZF clear
        test eax, eax
        ret

# Turns memory decoding on or off in the command register of the entropy device (r12d);
# decode_on_at: on, for the function at configuration address eax.
decode_on:
        mov eax, r12d
decode_on_at:
        push rax
        add eax, 4
        call cfg_read
        or eax, 2
        jmp 1f
decode_off:
        push r12
        lea eax, [r12d + 4]
        call cfg_read
        and eax, ~2
1:      mov ecx, eax
        pop rax
        add eax, 4
        jmp cfg_write

# Moves the entropy device's BAR 0 to rdi: the low half, then the high half, as firmware
# writes them.
set_bar0:
        push rdi
        lea eax, [r12d + 0x10]
        mov ecx, edi
        call cfg_write
        mov rcx, [rsp]
        shr rcx, 32
        lea eax, [r12d + 0x14]
        call cfg_write
        pop rdi
        ret

# Offers the 64-byte buffer at rdi to the device to fill, as the next entry of queue 0's
# available ring (descriptor: the entry's index modulo the queue size).
offer:
        movzx eax, word ptr [AVAIL + 2]
        mov ecx, eax
        and ecx, QSIZE - 1
        mov edx, ecx
        shl edx, 4
        mov [DESC + rdx], rdi         # addr
        mov dword ptr [DESC + rdx + 8], 64  # len
        mov word ptr [DESC + rdx + 12], 2   # VIRTQ_DESC_F_WRITE
        mov word ptr [DESC + rdx + 14], 0
        mov [AVAIL + 4 + rcx * 2], cx
        inc eax
        mov [AVAIL + 2], ax           # published
        ret

# Waits for at most rsi TSC ticks until queue 0's used index reaches di; CF set if it
# never did.
wait_used:
        rdtsc
        shl rdx, 32
        or rax, rdx
        lea r8, [rax + rsi]           # the deadline
1:      cmp [USED + 2], di
        je 2f
        pause
        rdtsc
        shl rdx, 32
        or rax, rdx
        cmp rax, r8
        jb 1b
        stc
        ret
2:      clc
        ret

        .balign 8
keyboard_bar: .quad 0
common:       .long 0
notify:       .long 0
multiplier:   .long 0
keyboard:     .long 0
moved:        .asciz "PHYLLOME-BAR-MOVED\n"
old_quiet:    .asciz "PHYLLOME-BAR-OLD-DOORBELL-QUIET\n"
kicked:       .asciz "PHYLLOME-BAR-IOEVENTFD-KICKED entropy="
newline:      .asciz "\n"
on_ram:       .asciz "PHYLLOME-BAR-ON-RAM-IS-RAM\n"
back:         .asciz "PHYLLOME-BAR-BACK-FROM-RAM\n"
overlap:      .asciz "PHYLLOME-BAR-OVERLAP-SURVIVED num_queues="
apart:        .asciz "PHYLLOME-BAR-APART-BOTH-ANSWER\n"
done:         .asciz "PHYLLOME-BAR-DONE\n"
no_device:    .asciz "PHYLLOME-BAR-NO-DEVICE\n"
fail:         .asciz "PHYLLOME-BAR-BAD "
why_caps:     .asciz "no common or notify capability\n"
why_moved:    .asciz "the device does not answer at its new place only\n"
why_setup:    .asciz "the device refused its set-up\n"
why_old:      .asciz "the doorbell at the old address still serves the queue\n"
why_new:      .asciz "no doorbell at the new address (or no entropy)\n"
why_ram:      .asciz "a BAR over RAM took RAM's place\n"
why_apart:    .asciz "moved apart, the devices do not both answer\n"
why_back:     .asciz "back from RAM, the device is not as it was\n"
