//! Distribution capability flags (`erl_dist_protocol`, "Distribution Flags"; values from
//! `lib/kernel/include/dist.hrl` and `erts/emulator/beam/dist.h`).
//!
//! A connection uses the intersection of both sides' flags: a node may *receive* anything, but
//! must *send* only what the intersection allows.

use std::fmt;
use std::ops::{BitAnd, BitOr, Not};

/// A set of distribution flags (64 bits; the upper 32 travel in the `'N'` name message).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DistFlags(pub u64);

macro_rules! flags {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        impl DistFlags {
            $( $(#[$doc])* pub const $name: DistFlags = DistFlags($value); )*
            /// Every named flag, for printing.
            pub const NAMED: &'static [(&'static str, DistFlags)] = &[$((stringify!($name), DistFlags($value))),*];
        }
    };
}

flags! {
    /// The node is visible (in `nodes()`), not hidden.
    PUBLISHED = 0x1;
    /// Obsolete atom cache; never set.
    ATOM_CACHE = 0x2;
    /// Extended references (mandatory since OTP 25).
    EXTENDED_REFERENCES = 0x4;
    /// Distributed monitors.
    DIST_MONITOR = 0x8;
    /// Fun tags (mandatory since OTP 25).
    FUN_TAGS = 0x10;
    /// Monitors by registered name.
    DIST_MONITOR_NAME = 0x20;
    /// Obsolete hidden atom cache; never set.
    HIDDEN_ATOM_CACHE = 0x40;
    /// NEW_FUN_EXT (mandatory since OTP 25).
    NEW_FUN_TAGS = 0x80;
    /// Extended pids and ports (mandatory since OTP 25).
    EXTENDED_PIDS_PORTS = 0x100;
    /// EXPORT_EXT (mandatory since OTP 25).
    EXPORT_PTR_TAG = 0x200;
    /// Bitstrings (mandatory since OTP 25).
    BIT_BINARIES = 0x400;
    /// NEW_FLOAT_EXT (mandatory since OTP 25).
    NEW_FLOATS = 0x800;
    /// Unicode I/O.
    UNICODE_IO = 0x1000;
    /// The distribution header with an atom cache.
    DIST_HDR_ATOM_CACHE = 0x2000;
    /// SMALL_ATOM_EXT.
    SMALL_ATOM_TAGS = 0x4000;
    /// UTF-8 atoms (mandatory since OTP 25).
    UTF8_ATOMS = 0x10000;
    /// MAP_EXT (mandatory since OTP 25).
    MAP_TAG = 0x20000;
    /// 32-bit creation (mandatory since OTP 25).
    BIG_CREATION = 0x40000;
    /// SEND_SENDER (op 22).
    SEND_SENDER = 0x80000;
    /// Large seq-trace labels.
    BIG_SEQTRACE_LABELS = 0x100000;
    /// PAYLOAD_EXIT, PAYLOAD_EXIT2, PAYLOAD_MONITOR_P_EXIT (ops 24..=28).
    EXIT_PAYLOAD = 0x400000;
    /// Fragmented messages.
    FRAGMENTS = 0x800000;
    /// The OTP 23 handshake (mandatory since OTP 25).
    HANDSHAKE_23 = 0x1000000;
    /// The new link protocol (mandatory since OTP 26).
    UNLINK_ID = 0x2000000;
    /// Stands for every OTP 25 mandatory flag (bit 26; the guide's "bit 36" is a doc bug).
    MANDATORY_25_DIGEST = 0x4000000;
    /// SPAWN_REQUEST / SPAWN_REPLY (ops 29..=32).
    SPAWN = 1 << 32;
    /// Dynamic node name request.
    NAME_ME = 1 << 33;
    /// Version 4 node containers: 64-bit ports, 5-word references (mandatory since OTP 26).
    V4_NC = 1 << 34;
    /// ALIAS_SEND (ops 33, 34).
    ALIAS = 1 << 35;
    /// OTP 28 ALTACT_SIG_SEND (op 37).
    ALTACT_SIG = 1 << 37;
}

impl DistFlags {
    /// No flags.
    pub const EMPTY: DistFlags = DistFlags(0);

    /// What OTP 25 requires of a peer (`DFLAG_DIST_MANDATORY_25`, 0x1070f94).
    pub const MANDATORY_25: DistFlags = DistFlags(
        Self::EXTENDED_REFERENCES.0
            | Self::FUN_TAGS.0
            | Self::NEW_FUN_TAGS.0
            | Self::EXTENDED_PIDS_PORTS.0
            | Self::EXPORT_PTR_TAG.0
            | Self::BIT_BINARIES.0
            | Self::NEW_FLOATS.0
            | Self::UTF8_ATOMS.0
            | Self::MAP_TAG.0
            | Self::BIG_CREATION.0
            | Self::HANDSHAKE_23.0,
    );

    /// What OTP 26+ adds to the mandatory set (`DFLAG_DIST_MANDATORY_26`).
    pub const MANDATORY_26: DistFlags = DistFlags(Self::UNLINK_ID.0 | Self::V4_NC.0);

    /// What this node requires of every peer: the OTP 26 mandatory set.
    pub const MANDATORY: DistFlags = DistFlags(Self::MANDATORY_25.0 | Self::MANDATORY_26.0);

    /// `true` if every flag of `other` is set here.
    pub const fn contains(self, other: DistFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Expands [`DistFlags::MANDATORY_25_DIGEST`] into the flags it stands for, as
    /// `dist_util:expand_mandatory_25_flag` does.
    pub const fn expand_digest(self) -> DistFlags {
        if self.0 & Self::MANDATORY_25_DIGEST.0 != 0 { DistFlags(self.0 | Self::MANDATORY_25.0) } else { self }
    }

    /// The flags of `required` that are missing here, after expanding the digest bit.
    pub const fn missing(self, required: DistFlags) -> DistFlags {
        DistFlags(required.0 & !self.expand_digest().0)
    }

    /// `self` without the flags in `other`.
    pub const fn without(self, other: DistFlags) -> DistFlags {
        DistFlags(self.0 & !other.0)
    }

    /// `self` with the flags in `other`.
    pub const fn with(self, other: DistFlags) -> DistFlags {
        DistFlags(self.0 | other.0)
    }
}

impl BitOr for DistFlags {
    type Output = DistFlags;
    fn bitor(self, rhs: DistFlags) -> DistFlags {
        DistFlags(self.0 | rhs.0)
    }
}

impl BitAnd for DistFlags {
    type Output = DistFlags;
    fn bitand(self, rhs: DistFlags) -> DistFlags {
        DistFlags(self.0 & rhs.0)
    }
}

impl Not for DistFlags {
    type Output = DistFlags;
    fn not(self) -> DistFlags {
        DistFlags(!self.0)
    }
}

impl fmt::Debug for DistFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DistFlags({:#x}", self.0)?;
        let mut rest = self.0;
        let mut sep = ": ";
        for (name, flag) in Self::NAMED {
            if self.0 & flag.0 == flag.0 {
                write!(f, "{sep}{name}")?;
                sep = " | ";
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            write!(f, "{sep}{rest:#x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mandatory_sets_match_otp() {
        assert_eq!(DistFlags::MANDATORY_25.0, 0x1070f94);
        // OTP 25.2.3 advertises 0xd07df7fbd (protocol notes 1.2)
        let otp25 = DistFlags(0xd07df7fbd);
        assert_eq!(otp25.missing(DistFlags::MANDATORY), DistFlags::EMPTY);
        // a peer sending only PUBLISHED plus the digest bit satisfies the 25 set
        let digest_only = DistFlags::PUBLISHED | DistFlags::MANDATORY_25_DIGEST;
        assert_eq!(digest_only.missing(DistFlags::MANDATORY_25), DistFlags::EMPTY);
    }
}
