//! `Serialize` values straight to External Term Format bytes, with the conventions of the
//! module table (`term::typed`). Tags are chosen as `term::encode` chooses them (as
//! `term_to_binary(T, [{minor_version, 2}])` does), so a value and its [`Term`] encode alike.

use serde::ser::{self, Serialize};

use super::error::Error;
use super::{ATOM_TOKEN, ELIXIR_STRUCT_KEY, TERM_TOKEN};
use crate::term::MAX_ATOM_CHARS;
use crate::term::encode::{len32, write_int};
use crate::term::tags::*;

type Result<T> = std::result::Result<T, Error>;

/// Writes values after a version byte the caller has written.
pub(crate) struct Serializer<'o> {
    out: &'o mut Vec<u8>,
    /// Set by a special newtype ([`TERM_TOKEN`], [`ATOM_TOKEN`]) for the value inside it.
    next: Special,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    None,
    /// The next `serialize_bytes` is a whole encoded term (version byte included) to splice in.
    RawTerm,
    /// The next `serialize_str` is an atom's text.
    Atom,
}

impl<'o> Serializer<'o> {
    pub(crate) fn new(out: &'o mut Vec<u8>) -> Serializer<'o> {
        Serializer { out, next: Special::None }
    }

    fn write_atom(&mut self, name: &str) -> Result<()> {
        write_atom_str(self.out, name)
    }

    fn write_binary(&mut self, b: &[u8]) {
        self.out.reserve(5 + b.len());
        let n = len32(b.len()).to_be_bytes();
        self.out.extend_from_slice(&[BINARY_EXT, n[0], n[1], n[2], n[3]]);
        self.out.extend_from_slice(b);
    }

    fn tuple_header(&mut self, n: usize) {
        if n <= u8::MAX as usize {
            self.out.extend_from_slice(&[SMALL_TUPLE_EXT, n as u8]);
        } else {
            self.out.push(LARGE_TUPLE_EXT);
            self.out.extend_from_slice(&len32(n).to_be_bytes());
        }
    }

    /// `MAP_EXT` with a count to patch at the end; returns where the count is.
    fn map_header(&mut self) -> usize {
        self.out.push(MAP_EXT);
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        at
    }

    fn big(&mut self, negative: bool, magnitude: u128) {
        let n = 16 - (magnitude.leading_zeros() / 8) as usize;
        self.out.extend_from_slice(&[SMALL_BIG_EXT, n as u8, negative as u8]);
        self.out.extend_from_slice(&magnitude.to_le_bytes()[..n]);
    }
}

/// Writes an atom from its text, refusing text over 255 characters (BEAM's limit).
pub(crate) fn write_atom_str(out: &mut Vec<u8>, name: &str) -> Result<()> {
    let b = name.as_bytes();
    if b.len() <= u8::MAX as usize {
        out.reserve(2 + b.len());
        out.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, b.len() as u8]);
    } else {
        let chars = name.chars().count();
        if chars > MAX_ATOM_CHARS {
            return Err(Error::unrepresentable(format!(
                "an atom of {chars} characters (over {MAX_ATOM_CHARS}): `{}...`",
                name.chars().take(20).collect::<String>()
            )));
        }
        out.push(ATOM_UTF8_EXT);
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(b);
    Ok(())
}

fn patch_u32(out: &mut [u8], at: usize, n: usize) {
    out[at..at + 4].copy_from_slice(&len32(n).to_be_bytes());
}

impl<'a, 'o> ser::Serializer for &'a mut Serializer<'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a, 'o>;
    type SerializeTuple = &'a mut Serializer<'o>;
    type SerializeTupleStruct = &'a mut Serializer<'o>;
    type SerializeTupleVariant = &'a mut Serializer<'o>;
    type SerializeMap = MapSer<'a, 'o>;
    type SerializeStruct = MapSer<'a, 'o>;
    type SerializeStructVariant = MapSer<'a, 'o>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.write_atom(if v { "true" } else { "false" })
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.serialize_i64(v as i64)
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.serialize_i64(v as i64)
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.serialize_i64(v as i64)
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.out.extend_from_slice(&[SMALL_INTEGER_EXT, v]);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.serialize_i64(v as i64)
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.serialize_i64(v as i64)
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        match i64::try_from(v) {
            Ok(i) => self.serialize_i64(i),
            Err(_) => {
                self.big(false, v as u128);
                Ok(())
            }
        }
    }
    fn serialize_i128(self, v: i128) -> Result<()> {
        match i64::try_from(v) {
            Ok(i) => self.serialize_i64(i),
            Err(_) => {
                self.big(v < 0, v.unsigned_abs());
                Ok(())
            }
        }
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        match i64::try_from(v) {
            Ok(i) => self.serialize_i64(i),
            Err(_) => {
                self.big(false, v);
                Ok(())
            }
        }
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        self.serialize_f64(v as f64)
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        if !v.is_finite() {
            return Err(Error::unrepresentable(format!("the float {v} (BEAM has no NaN or infinity)")));
        }
        let b = v.to_bits().to_be_bytes();
        self.out.extend_from_slice(&[NEW_FLOAT_EXT, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        let mut buf = [0u8; 4];
        self.write_binary(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        if std::mem::replace(&mut self.next, Special::None) == Special::Atom {
            return self.write_atom(v);
        }
        self.write_binary(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        if std::mem::replace(&mut self.next, Special::None) == Special::RawTerm {
            // a whole encoding from `term::encode`: drop its version byte
            return match v.split_first() {
                Some((&VERSION_MAGIC, body)) if !body.is_empty() => {
                    self.out.extend_from_slice(body);
                    Ok(())
                }
                _ => Err(Error::unrepresentable("a raw term without its version byte")),
            };
        }
        self.write_binary(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<()> {
        self.write_atom("nil")
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        self.tuple_header(0);
        Ok(())
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<()> {
        self.write_atom(name)
    }

    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<()> {
        self.write_atom(variant)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, name: &'static str, value: &T) -> Result<()> {
        if name == TERM_TOKEN {
            self.next = Special::RawTerm;
        } else if name == ATOM_TOKEN {
            self.next = Special::Atom;
        }
        value.serialize(&mut *self)?;
        self.next = Special::None;
        Ok(())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.tuple_header(2);
        self.write_atom(variant)?;
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a, 'o>> {
        // optimistically a STRING_EXT (what BEAM writes for lists of 0..=255); turned into a
        // LIST_EXT at the first element that is not such an integer
        let start = self.out.len();
        self.out.extend_from_slice(&[STRING_EXT, 0, 0]);
        Ok(Seq { ser: self, start, n: 0, string: true })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self> {
        self.tuple_header(len);
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self> {
        self.tuple_header(len);
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self> {
        self.tuple_header(len + 1);
        self.write_atom(variant)?;
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<MapSer<'a, 'o>> {
        let count_at = self.map_header();
        Ok(MapSer { ser: self, count_at, n: 0 })
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<MapSer<'a, 'o>> {
        let count_at = self.map_header();
        let mut n = 0;
        if name.starts_with("Elixir.") {
            self.write_atom(ELIXIR_STRUCT_KEY)?;
            self.write_atom(name)?;
            n = 1;
        }
        Ok(MapSer { ser: self, count_at, n })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<MapSer<'a, 'o>> {
        self.tuple_header(2);
        self.write_atom(variant)?;
        let count_at = self.map_header();
        Ok(MapSer { ser: self, count_at, n: 0 })
    }
}

/// A sequence being written: a `STRING_EXT` while every element is an integer `0..=255`
/// (each stored as its byte), a `LIST_EXT` from the first element that is not.
pub(crate) struct Seq<'a, 'o> {
    ser: &'a mut Serializer<'o>,
    start: usize,
    n: usize,
    string: bool,
}

impl Seq<'_, '_> {
    /// Rewrites the `STRING_EXT` written so far as the start of a `LIST_EXT`.
    fn become_list(&mut self) {
        let out = &mut *self.ser.out;
        let bytes = out.split_off(self.start + 3);
        out.truncate(self.start);
        out.reserve(5 + 2 * bytes.len());
        out.push(LIST_EXT);
        out.extend_from_slice(&[0; 4]);
        for b in bytes {
            out.extend_from_slice(&[SMALL_INTEGER_EXT, b]);
        }
        self.string = false;
    }
}

impl ser::SerializeSeq for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        let mark = self.ser.out.len();
        value.serialize(&mut *self.ser)?;
        self.n += 1;
        if self.string {
            let out = &mut *self.ser.out;
            // two bytes that start with SMALL_INTEGER_EXT are exactly a small integer
            if let [SMALL_INTEGER_EXT, b] = out[mark..] {
                out.truncate(mark);
                out.push(b);
                return Ok(());
            }
            let elem = out.split_off(mark);
            self.become_list();
            self.ser.out.extend_from_slice(&elem);
        }
        Ok(())
    }

    fn end(mut self) -> Result<()> {
        if self.n == 0 {
            self.ser.out.truncate(self.start);
            self.ser.out.push(NIL_EXT);
            return Ok(());
        }
        if self.string && self.n > u16::MAX as usize {
            self.become_list();
        }
        if self.string {
            let n = (self.n as u16).to_be_bytes();
            self.ser.out[self.start + 1..self.start + 3].copy_from_slice(&n);
        } else {
            patch_u32(self.ser.out, self.start + 1, self.n);
            self.ser.out.push(NIL_EXT);
        }
        Ok(())
    }
}

macro_rules! tuple_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut Serializer<'_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    )*};
}
tuple_like!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// A map (or a struct's map) being written; its count is patched at the end.
pub(crate) struct MapSer<'a, 'o> {
    ser: &'a mut Serializer<'o>,
    count_at: usize,
    n: usize,
}

impl ser::SerializeMap for MapSer<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        self.n += 1;
        key.serialize(&mut *self.ser)
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<()> {
        patch_u32(self.ser.out, self.count_at, self.n);
        Ok(())
    }
}

impl MapSer<'_, '_> {
    fn field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        self.n += 1;
        self.ser.write_atom(key)?;
        value.serialize(&mut *self.ser)
    }
}

impl ser::SerializeStruct for MapSer<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        self.field(key, value)
    }

    fn end(self) -> Result<()> {
        ser::SerializeMap::end(self)
    }
}

impl ser::SerializeStructVariant for MapSer<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        self.field(key, value)
    }

    fn end(self) -> Result<()> {
        ser::SerializeMap::end(self)
    }
}
