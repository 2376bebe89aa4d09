//! The flag sets this node advertises (`erl_dist_protocol`, "Distribution Flags"; protocol
//! notes 1.2 and 1.4).

use crate::dist::DistFlags;

/// Options for the flags we advertise; [`FlagOptions::flags`] builds the set.
///
/// Always advertised:
/// - the OTP 25 mandatory set (`0x1070f94`) and `MANDATORY_25_DIGEST`, and the OTP 26 additions
///   `UNLINK_ID` and `V4_NC`;
/// - `DIST_MONITOR`, `DIST_MONITOR_NAME` (BEAM assumes them), `UNICODE_IO`, `SMALL_ATOM_TAGS`,
///   `SEND_SENDER`, `BIG_SEQTRACE_LABELS`, `EXIT_PAYLOAD`, `ALIAS`.
///
/// Chosen by the options: `PUBLISHED`, `SPAWN`, and `DIST_HDR_ATOM_CACHE` + `FRAGMENTS`
/// (together, since either one makes BEAM send distribution headers instead of pass-through).
///
/// Never advertised: `ATOM_CACHE`, `HIDDEN_ATOM_CACHE` (obsolete), `NAME_ME` (dynamic names),
/// `LOCAL_EXT` (internal to ERTS). `ALTACT_SIG` (OTP 28 op 37) is not part of these profiles;
/// the node adds it (see `node::start::advertised_flags`).
///
/// With every option on, the set is OTP 25's own `0xd07df7fbd` ("profile B"); with the atom
/// cache and fragments off, it is `0xd075f5fbd` ("profile A", pass-through framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlagOptions {
    /// Advertise `PUBLISHED`: a visible node (in `nodes()`), not a hidden one.
    pub published: bool,
    /// Advertise `SPAWN`: required for `rpc:call`/`erpc:call` to this node.
    pub spawn: bool,
    /// Advertise `DIST_HDR_ATOM_CACHE` and `FRAGMENTS`: the receiver must then decode
    /// distribution headers, keep the atom cache and reassemble fragments.
    pub atom_cache_and_fragments: bool,
}

impl FlagOptions {
    /// The flags every profile advertises.
    pub const BASE: DistFlags = DistFlags(
        DistFlags::MANDATORY_25.0
            | DistFlags::MANDATORY_25_DIGEST.0
            | DistFlags::MANDATORY_26.0
            | DistFlags::DIST_MONITOR.0
            | DistFlags::DIST_MONITOR_NAME.0
            | DistFlags::UNICODE_IO.0
            | DistFlags::SMALL_ATOM_TAGS.0
            | DistFlags::SEND_SENDER.0
            | DistFlags::BIG_SEQTRACE_LABELS.0
            | DistFlags::EXIT_PAYLOAD.0
            | DistFlags::ALIAS.0,
    );

    /// Flags we must never advertise.
    pub const NEVER: DistFlags = DistFlags(
        DistFlags::ATOM_CACHE.0 | DistFlags::HIDDEN_ATOM_CACHE.0 | DistFlags::NAME_ME.0 | (1 << 36), // LOCAL_EXT
    );

    /// Everything on: OTP 25's `0xd07df7fbd`.
    pub const FULL: FlagOptions = FlagOptions { published: true, spawn: true, atom_cache_and_fragments: true };

    /// Visible, with spawn, pass-through framing: `0xd075f5fbd`.
    pub const PASS_THROUGH: FlagOptions = FlagOptions { published: true, spawn: true, atom_cache_and_fragments: false };

    /// The flag set these options describe.
    pub const fn flags(self) -> DistFlags {
        let mut f = Self::BASE.0;
        if self.published {
            f |= DistFlags::PUBLISHED.0;
        }
        if self.spawn {
            f |= DistFlags::SPAWN.0;
        }
        if self.atom_cache_and_fragments {
            f |= DistFlags::DIST_HDR_ATOM_CACHE.0 | DistFlags::FRAGMENTS.0;
        }
        DistFlags(f)
    }
}

impl Default for FlagOptions {
    /// [`FlagOptions::PASS_THROUGH`].
    fn default() -> FlagOptions {
        FlagOptions::PASS_THROUGH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_match_the_protocol_notes() {
        assert_eq!(FlagOptions::FULL.flags(), DistFlags(0xd07df7fbd));
        assert_eq!(FlagOptions::PASS_THROUGH.flags(), DistFlags(0xd075f5fbd));
        let hidden = FlagOptions { published: false, ..FlagOptions::FULL };
        assert_eq!(hidden.flags(), DistFlags(0xd07df7fbc));
        let no_spawn = FlagOptions { spawn: false, ..FlagOptions::FULL };
        assert_eq!(no_spawn.flags(), DistFlags(0xc07df7fbd));
        for published in [false, true] {
            for spawn in [false, true] {
                for atom_cache_and_fragments in [false, true] {
                    let f = FlagOptions { published, spawn, atom_cache_and_fragments }.flags();
                    assert_eq!(f & FlagOptions::NEVER, DistFlags::EMPTY);
                    assert_eq!(f.missing(DistFlags::MANDATORY), DistFlags::EMPTY);
                }
            }
        }
    }
}
