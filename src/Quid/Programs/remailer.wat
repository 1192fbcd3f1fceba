;; The seed's remailer and mailbox: a hosted program (PROTOCOL §11) written by hand in WebAssembly
;; text, which the host turns into a module with Wasmtime's Module.ConvertText (see Remailer.cs,
;; which also encodes and decodes the messages).
;;
;; Messages it takes (the first byte is the kind; integers are big-endian):
;;   INIT     0x01 || secret(32) || max_delay_ms u32   the first sets the owner; later ones are refused
;;   FORWARD  0x02 || to_len u8 (1..64) || to || payload (1 byte or more)
;;            sends DEPOSIT(payload) to `to` after a random delay of whole 100 ms ticks, 1 to
;;            max(1, max_delay_ms / 100); no reply when queued (a remailer tells nothing back)
;;   DEPOSIT  0x03 || payload (1 byte or more)   keeps payload in the mailbox; no reply when kept
;;   FETCH    0x04 || secret(32)   the owner takes the mailbox: up to 255 messages a call
;; Replies, all to the one-byte address [0x00] (the host's "the stream this message came by"):
;;   0x81                INIT done
;;   0x83 || payload     one message from the mailbox, oldest first
;;   0x84 || count u32   the end of a FETCH: how many 0x83 this call sent
;;   0xEE || code u8     refused: 1 not initialised, 2 already initialised, 3 wrong secret,
;;                       4 malformed, 5 store full, 6 unknown kind
;; A message whose kind has its high bit set (0x80..0xFF) is a reply, from another remailer that
;; a DEPOSIT or an error went to: it is dropped without an answer, or two remailers would answer
;; each other's errors forever.
;;
;; The program has no clock: a FORWARD waits in a queue for a number of ticks of a 100 ms timer,
;; which is armed while the queue holds anything. Queue and mailbox live in the key-value store,
;; so that they outlive the instance; memory holds only what one call is working on.
;;
;; Store keys:
;;   "owner"        secret(32) || max_delay_ms u32
;;   "queue"        head u32 || tail u32 || now u32: entries are "q" + index for head <= index < tail
;;                  (some may be gone already: entries leave when due, not in order); `now` counts
;;                  ticks. Removed when the queue empties.
;;   "q" + u32      due u32 (the tick it is sent at) || to_len u8 || to || 0x03 || payload:
;;                  the DEPOSIT to send stands ready after the address.
;;   "mailbox"      head u32 || tail u32: messages are "m" + index for head <= index < tail.
;;                  Removed when the mailbox empties.
;;   "m" + u32      payload
;;
;; If a call stops part-way (out of fuel), what it did stays done: the orders below make that, at
;; worst, one message sent twice or a gap (a missing entry) that the next scan steps over.
(module
  (import "quid" "send"   (func $send   (param i32 i32 i32 i32) (result i32)))
  (import "quid" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i32)))
  (import "quid" "kv_put" (func $kv_put (param i32 i32 i32 i32) (result i32)))
  (import "quid" "random" (func $random (param i32 i32)))
  (import "quid" "timer"  (func $timer  (param i64)))

  ;; Memory: 4 pages (256 KiB), which is all it uses; the maximum leaves room and nothing grows it.
  ;;        0  1 byte    the reply address [0x00] (memory starts zeroed)
  ;;       16  5         "owner"
  ;;       24  5         "queue"
  ;;       32  7         "mailbox"
  ;;       48  5         key scratch: a prefix byte ("q" or "m") || index u32
  ;;       64  8         reply scratch: what a short reply is built in
  ;;       80  4         random scratch
  ;;       96  12        the queue record, as loaded: head || tail || now
  ;;      112  8         the mailbox record, as loaded: head || tail
  ;;      128  36        the owner record, as loaded: secret || max_delay_ms
  ;;    65536  65536     input: where alloc puts every incoming message
  ;;   131072  65600     work: a queue entry (at most 4 + 1 + 64 + 1 + 65533 bytes), or a mailbox
  ;;                     message behind its 0x83
  (memory (export "memory") 4 16)
  (data (i32.const 16) "owner")
  (data (i32.const 24) "queue")
  (data (i32.const 32) "mailbox")

  (global $REPLY_TO    i32 (i32.const 0))
  (global $KEY_OWNER   i32 (i32.const 16))
  (global $KEY_QUEUE   i32 (i32.const 24))
  (global $KEY_MAILBOX i32 (i32.const 32))
  (global $KEY         i32 (i32.const 48))
  (global $OUT         i32 (i32.const 64))
  (global $RANDOM      i32 (i32.const 80))
  (global $QUEUE       i32 (i32.const 96))
  (global $MAILBOX     i32 (i32.const 112))
  (global $OWNER       i32 (i32.const 128))
  (global $INPUT       i32 (i32.const 65536))
  (global $WORK        i32 (i32.const 131072))
  (global $WORK_SIZE   i32 (i32.const 65600))

  ;; Whether this instance asked for a tick that has not come yet. Not in the store on purpose:
  ;; a fresh instance (a restart) starts at 0, and its first message arms the timer again when
  ;; the stored queue holds anything.
  (global $armed (mut i32) (i32.const 0))

  ;; ---------------------------------------------------------------------------------------------
  ;; Helpers

  ;; The big-endian u32 at $at.
  (func $get32 (param $at i32) (result i32)
    (i32.or
      (i32.or (i32.shl (i32.load8_u (local.get $at)) (i32.const 24))
              (i32.shl (i32.load8_u offset=1 (local.get $at)) (i32.const 16)))
      (i32.or (i32.shl (i32.load8_u offset=2 (local.get $at)) (i32.const 8))
              (i32.load8_u offset=3 (local.get $at)))))

  ;; Writes $value at $at, big-endian.
  (func $set32 (param $at i32) (param $value i32)
    (i32.store8 (local.get $at) (i32.shr_u (local.get $value) (i32.const 24)))
    (i32.store8 offset=1 (local.get $at) (i32.shr_u (local.get $value) (i32.const 16)))
    (i32.store8 offset=2 (local.get $at) (i32.shr_u (local.get $value) (i32.const 8)))
    (i32.store8 offset=3 (local.get $at) (local.get $value)))

  ;; Builds the five-byte key $prefix || $index in the key scratch and returns where it is.
  (func $key (param $prefix i32) (param $index i32) (result i32)
    (i32.store8 (global.get $KEY) (local.get $prefix))
    (call $set32 (i32.add (global.get $KEY) (i32.const 1)) (local.get $index))
    (global.get $KEY))

  ;; Sends the first $length bytes of the reply scratch to [0x00]. A reply that finds the outbox
  ;; full is lost: there is nothing better to do with it.
  (func $reply (param $length i32)
    (drop (call $send (global.get $REPLY_TO) (i32.const 1) (global.get $OUT) (local.get $length))))

  ;; Replies 0xEE || $code.
  (func $fail (param $code i32)
    (i32.store8 (global.get $OUT) (i32.const 0xEE))
    (i32.store8 offset=1 (global.get $OUT) (local.get $code))
    (call $reply (i32.const 2)))

  ;; Loads the owner record; 1 when there is one (INIT has been), else 0.
  (func $initialised (result i32)
    (i32.eq (call $kv_get (global.get $KEY_OWNER) (i32.const 5) (global.get $OWNER) (i32.const 36))
            (i32.const 36)))

  ;; Loads the queue record, or zeros when there is none (an empty queue).
  (func $load_queue
    (if (i32.ne (call $kv_get (global.get $KEY_QUEUE) (i32.const 5) (global.get $QUEUE) (i32.const 12))
                (i32.const 12))
      (then
        (i64.store (global.get $QUEUE) (i64.const 0))
        (i32.store offset=8 (global.get $QUEUE) (i32.const 0)))))

  ;; Stores the queue record, or removes it when head = tail; 0, or -1 when the store is full.
  (func $save_queue (result i32)
    (call $kv_put (global.get $KEY_QUEUE) (i32.const 5) (global.get $QUEUE)
      (select (i32.const 0) (i32.const 12)
        (i32.eq (call $get32 (global.get $QUEUE))
                (call $get32 (i32.add (global.get $QUEUE) (i32.const 4)))))))

  ;; Loads the mailbox record, or zeros when there is none (an empty mailbox).
  (func $load_mailbox
    (if (i32.ne (call $kv_get (global.get $KEY_MAILBOX) (i32.const 7) (global.get $MAILBOX) (i32.const 8))
                (i32.const 8))
      (then (i64.store (global.get $MAILBOX) (i64.const 0)))))

  ;; Stores the mailbox record, or removes it when head = tail; 0, or -1 when the store is full.
  (func $save_mailbox (result i32)
    (call $kv_put (global.get $KEY_MAILBOX) (i32.const 7) (global.get $MAILBOX)
      (select (i32.const 0) (i32.const 8)
        (i32.eq (call $get32 (global.get $MAILBOX))
                (call $get32 (i32.add (global.get $MAILBOX) (i32.const 4)))))))

  ;; Arms the 100 ms tick when the queue holds anything and no tick is pending.
  (func $keep_ticking
    (if (global.get $armed) (then (return)))
    (call $load_queue)
    (if (i32.ne (call $get32 (global.get $QUEUE))
                (call $get32 (i32.add (global.get $QUEUE) (i32.const 4))))
      (then
        (call $timer (i64.const 100))
        (global.set $armed (i32.const 1)))))

  ;; ---------------------------------------------------------------------------------------------
  ;; What the host calls

  ;; Every message goes to the input area; one larger than 64 KiB (the host never sends one) traps.
  (func (export "alloc") (param $length i32) (result i32)
    (if (i32.gt_u (local.get $length) (i32.const 65536)) (then (unreachable)))
    (global.get $INPUT))

  ;; Dispatches on the first byte, then makes sure a non-empty queue has its tick coming.
  (func (export "on_message") (param $at i32) (param $length i32)
    (local $kind i32)
    (block $handled
      (if (i32.eqz (local.get $length))
        (then (call $fail (i32.const 4)) (br $handled)))
      (local.set $kind (i32.load8_u (local.get $at)))
      ;; A reply (high bit set) is never answered.
      (br_if $handled (i32.ge_u (local.get $kind) (i32.const 0x80)))
      (block $unknown
        (block $fetch
          (block $deposit
            (block $forward
              (block $init
                ;; kind:    0         1     2        3        4       else
                (br_table $unknown $init $forward $deposit $fetch $unknown (local.get $kind)))
              (call $on_init (local.get $at) (local.get $length))
              (br $handled))
            (call $on_forward (local.get $at) (local.get $length))
            (br $handled))
          (call $on_deposit (local.get $at) (local.get $length))
          (br $handled))
        (call $on_fetch (local.get $at) (local.get $length))
        (br $handled))
      (call $fail (i32.const 6)))
    (call $keep_ticking))

  ;; One tick: every queued entry that is due is sent (its DEPOSIT, to its address) and removed.
  ;; When send answers -1 (the outbox is full) the scan stops; that entry and the rest wait for
  ;; the next tick. Leading gaps move the head on. Re-arms while anything remains.
  (func (export "on_timer")
    (local $index i32) (local $tail i32) (local $now i32) (local $length i32)
    (local $to_length i32) (local $leading i32)
    (global.set $armed (i32.const 0))
    (call $load_queue)
    (local.set $index (call $get32 (global.get $QUEUE)))
    (local.set $tail (call $get32 (i32.add (global.get $QUEUE) (i32.const 4))))
    (if (i32.eq (local.get $index) (local.get $tail)) (then (return)))
    (local.set $now (i32.add (call $get32 (i32.add (global.get $QUEUE) (i32.const 8))) (i32.const 1)))
    (call $set32 (i32.add (global.get $QUEUE) (i32.const 8)) (local.get $now))
    (local.set $leading (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.eq (local.get $index) (local.get $tail)))
        (block $kept
          (block $gone
            ;; The first four bytes say when it is due; a gap (no entry) is gone already.
            (br_if $gone (i32.lt_s (call $kv_get (call $key (i32.const 0x71) (local.get $index)) (i32.const 5)
                                                 (global.get $WORK) (i32.const 4))
                                   (i32.const 0)))
            ;; Due when now - due >= 0, counted so as to survive now wrapping round.
            (br_if $kept (i32.lt_s (i32.sub (local.get $now) (call $get32 (global.get $WORK))) (i32.const 0)))
            (local.set $length (call $kv_get (call $key (i32.const 0x71) (local.get $index)) (i32.const 5)
                                             (global.get $WORK) (global.get $WORK_SIZE)))
            (local.set $to_length (i32.load8_u offset=4 (global.get $WORK)))
            ;; An entry this program wrote is well formed; one that is not is dropped, not sent.
            (if (i32.and
                  (i32.and (i32.ge_u (local.get $to_length) (i32.const 1))
                           (i32.le_u (local.get $to_length) (i32.const 64)))
                  (i32.and (i32.ge_s (local.get $length) (i32.add (local.get $to_length) (i32.const 7)))
                           (i32.le_s (local.get $length) (global.get $WORK_SIZE))))
              (then
                (br_if $done
                  (i32.lt_s
                    (call $send
                      (i32.add (global.get $WORK) (i32.const 5)) (local.get $to_length)
                      (i32.add (i32.add (global.get $WORK) (i32.const 5)) (local.get $to_length))
                      (i32.sub (i32.sub (local.get $length) (i32.const 5)) (local.get $to_length)))
                    (i32.const 0)))))
            (drop (call $kv_put (call $key (i32.const 0x71) (local.get $index)) (i32.const 5)
                                (global.get $WORK) (i32.const 0))))
          ;; Gone: when nothing before it remains, the head moves past it.
          (if (local.get $leading)
            (then (call $set32 (global.get $QUEUE) (i32.add (local.get $index) (i32.const 1)))))
          (local.set $index (i32.add (local.get $index) (i32.const 1)))
          (br $next))
        ;; Kept: the head stops here.
        (local.set $leading (i32.const 0))
        (local.set $index (i32.add (local.get $index) (i32.const 1)))
        (br $next)))
    ;; The record exists and keeps its size, so this cannot find the store full.
    (drop (call $save_queue))
    (call $keep_ticking))

  ;; ---------------------------------------------------------------------------------------------
  ;; The four kinds

  ;; INIT: 0x01 || secret(32) || max_delay_ms u32, stored as the owner record as it came.
  (func $on_init (param $at i32) (param $length i32)
    (if (i32.ne (local.get $length) (i32.const 37))
      (then (call $fail (i32.const 4)) (return)))
    (if (call $initialised)
      (then (call $fail (i32.const 2)) (return)))
    (if (i32.lt_s (call $kv_put (global.get $KEY_OWNER) (i32.const 5)
                                (i32.add (local.get $at) (i32.const 1)) (i32.const 36))
                  (i32.const 0))
      (then (call $fail (i32.const 5)) (return)))
    (i32.store8 (global.get $OUT) (i32.const 0x81))
    (call $reply (i32.const 1)))

  ;; FORWARD: 0x02 || to_len u8 || to || payload. Queued at the tail, due in 1 to
  ;; max(1, max_delay_ms / 100) ticks, drawn uniformly (random × ticks / 2^32). The address [0x00]
  ;; is refused: it means "back where the message came from", which a tick has not got.
  (func $on_forward (param $at i32) (param $length i32)
    (local $to_length i32) (local $payload i32) (local $ticks i32) (local $tail i32)
    (if (i32.lt_u (local.get $length) (i32.const 3))
      (then (call $fail (i32.const 4)) (return)))
    (local.set $to_length (i32.load8_u offset=1 (local.get $at)))
    (local.set $payload (i32.sub (i32.sub (local.get $length) (i32.const 2)) (local.get $to_length)))
    (if (i32.or
          (i32.or (i32.eqz (local.get $to_length))
                  (i32.gt_u (local.get $to_length) (i32.const 64)))
          (i32.lt_s (local.get $payload) (i32.const 1)))
      (then (call $fail (i32.const 4)) (return)))
    (if (i32.and (i32.eq (local.get $to_length) (i32.const 1))
                 (i32.eqz (i32.load8_u offset=2 (local.get $at))))
      (then (call $fail (i32.const 4)) (return)))
    (if (i32.eqz (call $initialised))
      (then (call $fail (i32.const 1)) (return)))
    ;; How many ticks: 1 + floor(r × n / 2^32) for a random r, with n = max(1, max_delay_ms / 100).
    (local.set $ticks (i32.div_u (call $get32 (i32.add (global.get $OWNER) (i32.const 32))) (i32.const 100)))
    (if (i32.eqz (local.get $ticks)) (then (local.set $ticks (i32.const 1))))
    (call $random (global.get $RANDOM) (i32.const 4))
    (local.set $ticks
      (i32.add (i32.const 1)
        (i32.wrap_i64
          (i64.shr_u
            (i64.mul (i64.extend_i32_u (i32.load (global.get $RANDOM)))
                     (i64.extend_i32_u (local.get $ticks)))
            (i64.const 32)))))
    (call $load_queue)
    (local.set $tail (call $get32 (i32.add (global.get $QUEUE) (i32.const 4))))
    ;; The entry: due || to_len || to || 0x03 || payload, 4 + length bytes in all.
    (call $set32 (global.get $WORK)
      (i32.add (call $get32 (i32.add (global.get $QUEUE) (i32.const 8))) (local.get $ticks)))
    (i32.store8 offset=4 (global.get $WORK) (local.get $to_length))
    (memory.copy (i32.add (global.get $WORK) (i32.const 5))
                 (i32.add (local.get $at) (i32.const 2))
                 (local.get $to_length))
    (i32.store8 (i32.add (i32.add (global.get $WORK) (i32.const 5)) (local.get $to_length)) (i32.const 0x03))
    (memory.copy (i32.add (i32.add (global.get $WORK) (i32.const 6)) (local.get $to_length))
                 (i32.add (i32.add (local.get $at) (i32.const 2)) (local.get $to_length))
                 (local.get $payload))
    (if (i32.lt_s (call $kv_put (call $key (i32.const 0x71) (local.get $tail)) (i32.const 5)
                                (global.get $WORK) (i32.add (local.get $length) (i32.const 4)))
                  (i32.const 0))
      (then (call $fail (i32.const 5)) (return)))
    (call $set32 (i32.add (global.get $QUEUE) (i32.const 4)) (i32.add (local.get $tail) (i32.const 1)))
    ;; No room for the record (the first entry of an empty queue): take the entry back.
    (if (i32.lt_s (call $save_queue) (i32.const 0))
      (then
        (drop (call $kv_put (call $key (i32.const 0x71) (local.get $tail)) (i32.const 5)
                            (global.get $WORK) (i32.const 0)))
        (call $fail (i32.const 5)))))

  ;; DEPOSIT: 0x03 || payload, kept at the mailbox's tail. Refused before INIT: a mailbox nobody
  ;; can fetch would only fill the store, and keep INIT out.
  (func $on_deposit (param $at i32) (param $length i32)
    (local $tail i32)
    (if (i32.lt_u (local.get $length) (i32.const 2))
      (then (call $fail (i32.const 4)) (return)))
    (if (i32.eqz (call $initialised))
      (then (call $fail (i32.const 1)) (return)))
    (call $load_mailbox)
    (local.set $tail (call $get32 (i32.add (global.get $MAILBOX) (i32.const 4))))
    (if (i32.lt_s (call $kv_put (call $key (i32.const 0x6D) (local.get $tail)) (i32.const 5)
                                (i32.add (local.get $at) (i32.const 1))
                                (i32.sub (local.get $length) (i32.const 1)))
                  (i32.const 0))
      (then (call $fail (i32.const 5)) (return)))
    (call $set32 (i32.add (global.get $MAILBOX) (i32.const 4)) (i32.add (local.get $tail) (i32.const 1)))
    (if (i32.lt_s (call $save_mailbox) (i32.const 0))
      (then
        (drop (call $kv_put (call $key (i32.const 0x6D) (local.get $tail)) (i32.const 5)
                            (global.get $WORK) (i32.const 0)))
        (call $fail (i32.const 5)))))

  ;; FETCH: 0x04 || secret(32). With the owner's secret (compared in constant time), sends the
  ;; mailbox oldest first as 0x83 || payload, each removed once sent, until it is empty, 255 have
  ;; gone (so that with the outbox empty at the start there is room for the count), or send
  ;; answers -1 (the rest wait for the next FETCH); then 0x84 || count. With the outbox full the
  ;; count is lost, and the owner learns of it only by counting the 0x83 it got.
  (func $on_fetch (param $at i32) (param $length i32)
    (local $i i32) (local $differ i32) (local $head i32) (local $tail i32) (local $got i32)
    (local $sent i32)
    (if (i32.ne (local.get $length) (i32.const 33))
      (then (call $fail (i32.const 4)) (return)))
    (if (i32.eqz (call $initialised))
      (then (call $fail (i32.const 1)) (return)))
    (loop $compare
      (local.set $differ
        (i32.or (local.get $differ)
                (i32.xor (i32.load8_u offset=1 (i32.add (local.get $at) (local.get $i)))
                         (i32.load8_u (i32.add (global.get $OWNER) (local.get $i))))))
      (br_if $compare (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 32))))
    (if (local.get $differ)
      (then (call $fail (i32.const 3)) (return)))
    (call $load_mailbox)
    (local.set $head (call $get32 (global.get $MAILBOX)))
    (local.set $tail (call $get32 (i32.add (global.get $MAILBOX) (i32.const 4))))
    (i32.store8 (global.get $WORK) (i32.const 0x83))
    (block $done
      (loop $next
        (br_if $done (i32.eq (local.get $head) (local.get $tail)))
        (br_if $done (i32.eq (local.get $sent) (i32.const 255)))
        (local.set $got (call $kv_get (call $key (i32.const 0x6D) (local.get $head)) (i32.const 5)
                                      (i32.add (global.get $WORK) (i32.const 1)) (i32.const 65535)))
        ;; A gap (left by a call that stopped part-way) is stepped over.
        (if (i32.ge_s (local.get $got) (i32.const 0))
          (then
            (if (i32.gt_u (local.get $got) (i32.const 65535)) (then (local.set $got (i32.const 65535))))
            (br_if $done (i32.lt_s (call $send (global.get $REPLY_TO) (i32.const 1) (global.get $WORK)
                                              (i32.add (local.get $got) (i32.const 1)))
                                   (i32.const 0)))
            (drop (call $kv_put (call $key (i32.const 0x6D) (local.get $head)) (i32.const 5)
                                (global.get $WORK) (i32.const 0)))
            (local.set $sent (i32.add (local.get $sent) (i32.const 1)))))
        (local.set $head (i32.add (local.get $head) (i32.const 1)))
        (br $next)))
    ;; The record shrinks or goes: this cannot find the store full.
    (call $set32 (global.get $MAILBOX) (local.get $head))
    (drop (call $save_mailbox))
    (i32.store8 (global.get $OUT) (i32.const 0x84))
    (call $set32 (i32.add (global.get $OUT) (i32.const 1)) (local.get $sent))
    (call $reply (i32.const 5)))
)
