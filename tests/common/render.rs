//! The canonical rendering of terms used by the BEAM vectors (`tests/data/otp*/index.txt`),
//! the Rust twin of `render/1` in `erlang_interop/make_vectors.escript`.

use std::fmt::Write;

use erlnode::term::{Atom, Term};
use md5::{Digest, Md5};

/// Renders longer than this are compared through their MD5, as the script writes them.
pub const MAX_INLINE_RENDER: usize = 1024;

/// The render of `t` as the index stores it: the text, or `MD5:<hex>` when long.
pub fn render_for_index(t: &Term) -> String {
    let mut s = String::new();
    render(t, &mut s);
    if s.len() > MAX_INLINE_RENDER { format!("MD5:{}", hex(&Md5::digest(s.as_bytes()))) } else { s }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn atom_hex(a: &Atom) -> String {
    hex(a.as_str().as_bytes())
}

fn join(items: &[Term], out: &mut String) {
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        render(t, out);
    }
}

pub fn render(t: &Term, out: &mut String) {
    match t {
        Term::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Term::BigInt(b) => {
            let _ = write!(out, "{b}");
        }
        Term::Float(f) => {
            let _ = write!(out, "F:{:016x}", f.to_bits());
        }
        Term::Atom(a) => {
            let _ = write!(out, "A:{}", atom_hex(a));
        }
        Term::Binary(b) => {
            let _ = write!(out, "B:{}", hex(b));
        }
        Term::BitBinary(b) => {
            let _ = write!(out, "BS:{}:{}", b.bits, hex(&b.data));
        }
        Term::Tuple(elems) => {
            out.push('{');
            join(elems, out);
            out.push('}');
        }
        Term::List(elems) => {
            out.push('[');
            join(elems, out);
            out.push(']');
        }
        Term::Improper(elems, tail) => {
            out.push('[');
            join(elems, out);
            out.push('|');
            render(tail, out);
            out.push(']');
        }
        Term::Map(m) => {
            out.push_str("#{");
            for (i, (k, v)) in m.sorted_entries().into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(k, out);
                out.push_str("=>");
                render(v, out);
            }
            out.push('}');
        }
        Term::Pid(p) => {
            let _ = write!(out, "P:{}:{}:{}:{}", atom_hex(&p.node), p.id, p.serial, p.creation);
        }
        Term::Port(p) => {
            let _ = write!(out, "PT:{}:{}:{}", atom_hex(&p.node), p.id, p.creation);
        }
        Term::Ref(r) => {
            let words: Vec<String> = r.ids().iter().map(|w| w.to_string()).collect();
            let _ = write!(out, "R:{}:{}:{}", atom_hex(&r.node), r.creation, words.join("."));
        }
        Term::ExportFun(f) => {
            let _ = write!(out, "E:{}:{}:{}", atom_hex(&f.module), atom_hex(&f.function), f.arity);
        }
        Term::LocalFun(f) => {
            let _ = write!(out, "L:{}:{}:{}:{}:", atom_hex(&f.module), f.arity, f.index, hex(&f.uniq));
            render(&f.old_index, out);
            out.push(':');
            render(&f.old_uniq, out);
            out.push(':');
            render(&f.pid, out);
            out.push_str(":[");
            join(&f.free_vars, out);
            out.push(']');
        }
    }
}
