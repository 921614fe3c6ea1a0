//! A minimal protobuf encoder: the handful of wire types the Perfetto writer needs.
//!
//! A message is encoded into a byte vector; a nested message is written in place after one
//! byte kept for its length, which is filled in afterwards (and widened, moving the body, only
//! for a message of 128 bytes or more), so the output is canonical (shortest varints).

/// Wire type of `int32`, `int64`, `uint32`, `uint64`, `bool` and enums.
pub const WIRE_VARINT: u8 = 0;
/// Wire type of `string`, `bytes`, nested messages and packed repeated fields.
pub const WIRE_LEN: u8 = 2;

/// Appends `value` as a base-128 varint (1 to 10 bytes).
pub fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// `value` as a varint in a fixed array: (bytes, how many are used).
pub fn varint_array(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut len = 0;
    while value >= 0x80 {
        bytes[len] = (value as u8) | 0x80;
        value >>= 7;
        len += 1;
    }
    bytes[len] = value as u8;
    (bytes, len + 1)
}

/// An encoder of one message (and the messages nested in it).
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder::default()
    }

    pub fn with_capacity(bytes: usize) -> Self {
        Encoder {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// Lets `write` append at most `room` bytes through a [`RawTail`] (stores into the spare
    /// capacity, reserved here, without a bounds check each), and keeps what it wrote: for the
    /// hot paths that encode many small messages of a known largest size.
    #[inline]
    pub fn append_raw<R>(&mut self, room: usize, write: impl FnOnce(&mut RawTail) -> R) -> R {
        self.buf.reserve(room);
        let len = self.buf.len();
        let start = self.buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        let mut tail = RawTail {
            next: start,
            #[cfg(debug_assertions)]
            end: start.wrapping_add(room),
        };
        let result = write(&mut tail);
        let used = tail.next as usize - start as usize;
        debug_assert!(used <= room);
        // SAFETY: `write` wrote `used` bytes (at most `room`, as RawTail's callers promise)
        // from `start`, the first byte of the spare capacity, which holds at least `room`.
        unsafe { self.buf.set_len(len + used) };
        result
    }

    /// Forgets the bytes, keeps the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        put_varint(
            &mut self.buf,
            (u64::from(field) << 3) | u64::from(wire_type),
        );
    }

    /// A `uint32`, `uint64` or enum field.
    pub fn uint(&mut self, field: u32, value: u64) {
        self.key(field, WIRE_VARINT);
        put_varint(&mut self.buf, value);
    }

    /// An `int32` or `int64` field: negative values take ten bytes, as protobuf specifies for
    /// both (an `int32` is sign-extended to 64 bits).
    pub fn int(&mut self, field: u32, value: i64) {
        self.uint(field, value as u64);
    }

    pub fn bool(&mut self, field: u32, value: bool) {
        self.uint(field, u64::from(value));
    }

    pub fn string(&mut self, field: u32, value: &str) {
        self.bytes_field(field, value.as_bytes());
    }

    pub fn bytes_field(&mut self, field: u32, value: &[u8]) {
        self.key(field, WIRE_LEN);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    /// A nested message, written by `body`.
    pub fn message(&mut self, field: u32, body: impl FnOnce(&mut Encoder)) {
        self.key(field, WIRE_LEN);
        let length_at = self.buf.len();
        self.buf.push(0);
        body(self);
        let len = self.buf.len() - length_at - 1;
        let (prefix, prefix_len) = varint_array(len as u64);
        self.buf[length_at] = prefix[0];
        if prefix_len > 1 {
            let rest = &prefix[1..prefix_len];
            self.buf
                .splice(length_at + 1..length_at + 1, rest.iter().copied());
        }
    }
}

/// Where [`Encoder::append_raw`] writes: the next byte of a reserved room. Each write needs
/// the room it names left (the caller counts: the unsafe part).
pub struct RawTail {
    next: *mut u8,
    #[cfg(debug_assertions)]
    end: *mut u8,
}

impl RawTail {
    #[inline(always)]
    fn check_room(&self, _bytes: usize) {
        #[cfg(debug_assertions)]
        assert!(
            self.end as usize - self.next as usize >= _bytes,
            "past the reserved room"
        );
    }

    /// # Safety
    /// One byte of the room is left.
    #[inline(always)]
    pub unsafe fn byte(&mut self, byte: u8) {
        self.check_room(1);
        // SAFETY: inside the room, as the caller promises.
        unsafe {
            self.next.write(byte);
            self.next = self.next.add(1);
        }
    }

    /// The first `len` (at most 8) bytes of `bytes` (little-endian: the first byte lowest).
    ///
    /// # Safety
    /// 8 bytes of the room are left (all 8 are written; the next write goes after `len`).
    #[inline(always)]
    pub unsafe fn word(&mut self, (bytes, len): (u64, usize)) {
        self.check_room(8);
        debug_assert!(len <= 8);
        // SAFETY: inside the room, as the caller promises; unaligned store.
        unsafe {
            self.next
                .cast::<[u8; 8]>()
                .write_unaligned(bytes.to_le_bytes());
            self.next = self.next.add(len);
        }
    }

    /// `value` as a varint; one or two bytes (most values here) without a loop.
    ///
    /// # Safety
    /// 10 bytes of the room are left.
    #[inline(always)]
    pub unsafe fn varint(&mut self, mut value: u64) {
        self.check_room(10);
        // SAFETY: at most 10 bytes, inside the room, as the caller promises.
        unsafe {
            if value < 0x80 {
                return self.byte(value as u8);
            }
            if value < 0x4000 {
                let two = [(value as u8) | 0x80, (value >> 7) as u8];
                self.next.cast::<[u8; 2]>().write_unaligned(two);
                self.next = self.next.add(2);
                return;
            }
            while value >= 0x80 {
                self.byte((value as u8) | 0x80);
                value >>= 7;
            }
            self.byte(value as u8);
        }
    }

    /// Keeps the next byte, to be filled in later with [`RawTail::fill_length`].
    ///
    /// # Safety
    /// One byte of the room is left.
    #[inline(always)]
    pub unsafe fn keep_byte(&mut self) -> KeptByte {
        let kept = KeptByte(self.next);
        // SAFETY: as the caller promises.
        unsafe { self.byte(0) };
        kept
    }

    /// Fills in a byte kept by [`RawTail::keep_byte`] with the number of bytes written
    /// since: the length of a message of less than 128 bytes.
    ///
    /// # Safety
    /// `kept` was kept on this tail.
    #[inline(always)]
    pub unsafe fn fill_length(&mut self, kept: KeptByte) {
        let len = self.next as usize - kept.0 as usize - 1;
        debug_assert!(len < 0x80);
        // SAFETY: as the caller promises, a byte inside this tail's room.
        unsafe { kept.0.write(len as u8) };
    }
}

/// A byte of a [`RawTail`] to fill in later (a length before a message).
pub struct KeptByte(*mut u8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testing::{decode, Value};

    fn varint(value: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        put_varint(&mut buf, value);
        buf
    }

    #[test]
    fn varints_are_base_128_little_endian() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(16_383), [0xff, 0x7f]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(u64::MAX).len(), 10);
        assert_eq!(varint(u64::MAX)[9], 0x01);
        for value in [0, 1, 127, 128, 300, 16_384, u64::MAX] {
            let (bytes, len) = varint_array(value);
            assert_eq!(bytes[..len], varint(value));
        }
    }

    #[test]
    fn scalar_fields_have_their_keys() {
        let mut e = Encoder::new();
        e.uint(1, 150);
        assert_eq!(e.bytes(), [0x08, 0x96, 0x01]);
        e.clear();
        e.bool(13, true);
        assert_eq!(e.bytes(), [0x68, 0x01]);
        e.clear();
        e.string(2, "testing");
        assert_eq!(e.bytes(), b"\x12\x07testing");
        e.clear();
        // Field 60 needs a two-byte key: (60 << 3) | 2 = 482.
        e.bytes_field(60, &[]);
        assert_eq!(e.bytes(), [0xe2, 0x03, 0x00]);
    }

    #[test]
    fn negative_ints_are_sign_extended_to_ten_bytes() {
        let mut e = Encoder::new();
        e.int(1, -1);
        assert_eq!(e.bytes().len(), 11);
        let fields = decode(e.bytes()).unwrap();
        assert_eq!(fields[0].1, Value::Varint(u64::MAX));
        e.clear();
        e.int(1, 5);
        assert_eq!(e.bytes(), [0x08, 0x05]);
    }

    #[test]
    fn nested_lengths_are_inserted_in_front() {
        let mut e = Encoder::new();
        e.message(1, |m| {
            m.uint(1, 1);
            m.message(2, |inner| inner.string(1, &"x".repeat(200)));
            m.message(3, |_| {});
        });
        let bytes = e.bytes();
        // outer: key, 2-byte length; then 1:1, then 2: key + 2-byte length + 203 bytes.
        let inner_len = 1 + 2 + 200;
        let outer_len = 2 + (1 + 2 + inner_len) + 2;
        assert_eq!(bytes.len(), 1 + 2 + outer_len);
        let fields = decode(bytes).unwrap();
        assert_eq!(fields.len(), 1);
        let Value::Bytes(outer) = &fields[0].1 else {
            panic!("not a message")
        };
        let outer = decode(outer).unwrap();
        assert_eq!(outer[0], (1, Value::Varint(1)));
        let Value::Bytes(inner) = &outer[1].1 else {
            panic!("not a message")
        };
        assert_eq!(
            decode(inner).unwrap(),
            [(1, Value::Bytes("x".repeat(200).into_bytes()))]
        );
        assert_eq!(outer[2], (3, Value::Bytes(Vec::new())));
    }
}
