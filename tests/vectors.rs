//! The codec against vectors made by real BEAM (OTP 25, 27 and 29):
//! `erlang_interop/make_vectors.escript` wrote `tests/data/otpNN/NAME.etf` with
//! `term_to_binary(T, [{minor_version, 2}])` and the canonical render of `T` in `index.txt`.
//!
//! For every case: the decoded term renders as BEAM rendered it; `exact` cases re-encode to the
//! very same bytes; compressed variants (`NAME.z.etf`) decode to the same term.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::render::render_for_index;
use erlnode::term::{DecodeOptions, Term, decode, decode_bytes, decode_term_at, encode};

const OTP_DIRS: [&str; 3] = ["otp25", "otp27", "otp29"];
/// The corpus has 95 cases; fewer means the fixtures were truncated or not regenerated.
const MIN_CASES: usize = 95;

struct Case {
    name: String,
    render: String,
    flags: String,
}

fn data_dir(otp: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(otp)
}

fn cases(otp: &str) -> Vec<Case> {
    let index = std::fs::read_to_string(data_dir(otp).join("index.txt")).expect("index.txt");
    index
        .lines()
        .map(|line| {
            let mut f = line.split('\t');
            let (Some(name), Some(render), Some(flags), None) = (f.next(), f.next(), f.next(), f.next()) else {
                panic!("{otp}: malformed index line {line:?}");
            };
            Case { name: name.into(), render: render.into(), flags: flags.into() }
        })
        .collect()
}

/// Runs `f` on a thread with a large stack: the test's recursive renderer walks the 1000-deep
/// cases (the codec itself is iterative).
fn with_big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(64 << 20).spawn(f).unwrap().join().unwrap();
}

fn check_otp(otp: &'static str) {
    with_big_stack(move || {
        let dir = data_dir(otp);
        let cases = cases(otp);
        assert!(cases.len() >= MIN_CASES, "{otp}: only {} cases", cases.len());
        let (mut exact, mut compressed) = (0, 0);
        for case in &cases {
            let name = &case.name;
            let bytes = std::fs::read(dir.join(format!("{name}.etf"))).unwrap();
            let t = decode(&bytes).unwrap_or_else(|e| panic!("{otp}/{name}: {e}"));
            assert_eq!(render_for_index(&t), case.render, "{otp}/{name}: render");

            // zero-copy decoding and decoding inside a larger buffer agree
            let t2 = decode_bytes(Bytes::from(bytes.clone())).unwrap();
            assert!(t2 == t, "{otp}/{name}: decode_bytes differs");
            let mut framed = vec![0xAA, 0xBB];
            framed.extend_from_slice(&bytes);
            framed.push(0xCC);
            let framed = Bytes::from(framed);
            let (t3, end) = decode_term_at(&framed, 2, &DecodeOptions::default()).unwrap();
            assert!(t3 == t, "{otp}/{name}: decode_term_at differs");
            assert_eq!(end, framed.len() - 1, "{otp}/{name}: decode_term_at end");

            let re = encode(&t);
            if case.flags == "exact" {
                exact += 1;
                if re != bytes {
                    let at = re.iter().zip(&bytes).position(|(a, b)| a != b).unwrap_or(re.len().min(bytes.len()));
                    panic!(
                        "{otp}/{name}: re-encoding differs at byte {at} (ours {} bytes, BEAM {})",
                        re.len(),
                        bytes.len()
                    );
                }
            } else {
                assert!(case.flags.starts_with("decode-only:"), "{otp}/{name}: flags {:?}", case.flags);
                assert!(decode(&re).unwrap() == t, "{otp}/{name}: round trip");
            }

            let z = dir.join(format!("{name}.z.etf"));
            if z.exists() {
                compressed += 1;
                let zbytes = std::fs::read(&z).unwrap();
                assert_eq!(&zbytes[..2], &[131, 80], "{otp}/{name}: not compressed");
                let tz = decode(&zbytes).unwrap_or_else(|e| panic!("{otp}/{name}.z: {e}"));
                assert!(tz == t, "{otp}/{name}.z: differs from the plain decoding");
            }
        }
        assert!(exact >= 89, "{otp}: only {exact} exact cases");
        assert!(compressed >= 5, "{otp}: only {compressed} compressed cases");
    });
}

#[test]
fn otp25_vectors() {
    check_otp(OTP_DIRS[0]);
}

#[test]
fn otp27_vectors() {
    check_otp(OTP_DIRS[1]);
}

#[test]
fn otp29_vectors() {
    check_otp(OTP_DIRS[2]);
}

/// Spot checks that the fixtures hold what their names say, independent of the renderer.
#[test]
fn fixture_shapes() {
    let read = |otp: &str, name: &str| std::fs::read(data_dir(otp).join(format!("{name}.etf"))).unwrap();
    for otp in OTP_DIRS {
        assert_eq!(read(otp, "string_abc"), [131, 107, 0, 3, b'a', b'b', b'c']);
        assert_eq!(read(otp, "list_70000_bytes")[1], 108, "LIST_EXT beyond 65535");
        assert_eq!(read(otp, "string_65535")[1], 107, "STRING_EXT up to 65535");
        assert_eq!(read(otp, "atom_255_emoji")[1], 118, "ATOM_UTF8_EXT beyond 255 bytes");
        assert_eq!(read(otp, "fun_local_free")[1], 112, "NEW_FUN_EXT");
        assert_eq!(read(otp, "legacy_float_ext")[1], 99, "FLOAT_EXT");
        assert_eq!(read(otp, "legacy_atom_ext")[3], 100, "ATOM_EXT");
        let gen_call = decode(&read(otp, "gen_call")).unwrap();
        let Term::Tuple(parts) = &gen_call else { panic!() };
        assert!(parts[0].is_atom("$gen_call"));
        assert_eq!(read(otp, "port_remote_64bit")[1], 120, "V4_PORT_EXT");
    }
    assert_eq!(read("otp25", "port_remote")[1], 89, "OTP 25 writes NEW_PORT_EXT");
    assert_eq!(read("otp27", "port_remote")[1], 120, "OTP 27 writes V4_PORT_EXT");
}
