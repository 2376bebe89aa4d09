//! Tag bytes of the External Term Format, spelled as `erl_ext_dist` spells them
//! (`erts/doc/guides/erl_ext_dist.md`, and `erts/emulator/beam/external.h`).

/// The version byte that starts every encoded term (`term_to_binary` output, dist payloads).
pub const VERSION_MAGIC: u8 = 131;

/// `COMPRESSED` (`'P'`): `UncompressedSize:32` then a zlib stream; only right after the version.
pub const COMPRESSED: u8 = 80;
/// `ATOM_CACHE_REF`: `Idx:8`, an entry of the distribution header's atom reference list.
pub const ATOM_CACHE_REF: u8 = 82;
/// `NEW_PID_EXT`: `Node, ID:32, Serial:32, Creation:32`.
pub const NEW_PID_EXT: u8 = 88;
/// `NEW_PORT_EXT`: `Node, ID:32, Creation:32`.
pub const NEW_PORT_EXT: u8 = 89;
/// `NEWER_REFERENCE_EXT`: `Len:16, Node, Creation:32, ID:32 * Len`.
pub const NEWER_REFERENCE_EXT: u8 = 90;
/// `NEW_FLOAT_EXT`: 8 bytes of IEEE 754 binary64, big-endian.
pub const NEW_FLOAT_EXT: u8 = 70;
/// `BIT_BINARY_EXT`: `Len:32, Bits:8, Data:Len`.
pub const BIT_BINARY_EXT: u8 = 77;
/// `SMALL_INTEGER_EXT`: `Int:8` unsigned.
pub const SMALL_INTEGER_EXT: u8 = 97;
/// `INTEGER_EXT`: `Int:32` signed.
pub const INTEGER_EXT: u8 = 98;
/// `FLOAT_EXT` (obsolete): 31 bytes of `printf("%.20e")` text, NUL padded.
pub const FLOAT_EXT: u8 = 99;
/// `ATOM_EXT` (deprecated): `Len:16`, Latin-1 text.
pub const ATOM_EXT: u8 = 100;
/// `REFERENCE_EXT` (obsolete): `Node, ID:32, Creation:8`.
pub const REFERENCE_EXT: u8 = 101;
/// `PORT_EXT` (obsolete): `Node, ID:32, Creation:8`.
pub const PORT_EXT: u8 = 102;
/// `PID_EXT` (obsolete): `Node, ID:32, Serial:32, Creation:8`.
pub const PID_EXT: u8 = 103;
/// `SMALL_TUPLE_EXT`: `Arity:8`, elements.
pub const SMALL_TUPLE_EXT: u8 = 104;
/// `LARGE_TUPLE_EXT`: `Arity:32`, elements.
pub const LARGE_TUPLE_EXT: u8 = 105;
/// `NIL_EXT`: the empty list.
pub const NIL_EXT: u8 = 106;
/// `STRING_EXT`: `Length:16`, bytes; a list of small integers.
pub const STRING_EXT: u8 = 107;
/// `LIST_EXT`: `Length:32`, elements, tail.
pub const LIST_EXT: u8 = 108;
/// `BINARY_EXT`: `Len:32`, data.
pub const BINARY_EXT: u8 = 109;
/// `SMALL_BIG_EXT`: `n:8, Sign:8`, `n` little-endian digits.
pub const SMALL_BIG_EXT: u8 = 110;
/// `LARGE_BIG_EXT`: `n:32, Sign:8`, `n` little-endian digits.
pub const LARGE_BIG_EXT: u8 = 111;
/// `NEW_FUN_EXT`: a local fun (closure).
pub const NEW_FUN_EXT: u8 = 112;
/// `EXPORT_EXT`: `Module, Function, Arity`, an external fun.
pub const EXPORT_EXT: u8 = 113;
/// `NEW_REFERENCE_EXT` (obsolete): `Len:16, Node, Creation:8, ID:32 * Len`.
pub const NEW_REFERENCE_EXT: u8 = 114;
/// `SMALL_ATOM_EXT` (deprecated): `Len:8`, Latin-1 text.
pub const SMALL_ATOM_EXT: u8 = 115;
/// `MAP_EXT`: `Arity:32`, key/value pairs.
pub const MAP_EXT: u8 = 116;
/// `FUN_EXT` (removed in OTP 23): the pre-R8 fun encoding.
pub const FUN_EXT: u8 = 117;
/// `ATOM_UTF8_EXT`: `Len:16`, UTF-8 text.
pub const ATOM_UTF8_EXT: u8 = 118;
/// `SMALL_ATOM_UTF8_EXT`: `Len:8`, UTF-8 text.
pub const SMALL_ATOM_UTF8_EXT: u8 = 119;
/// `V4_PORT_EXT`: `Node, ID:64, Creation:32`.
pub const V4_PORT_EXT: u8 = 120;
/// `LOCAL_EXT`: a node-local encoding, only meaningful to the node that made it.
pub const LOCAL_EXT: u8 = 121;
