//! The shared vocabulary of the server: plain values with no I/O and no dependency on any other
//! module of the crate, so every layer above can use them.
//!
//! - [`identity`]: [`Role`], [`User`], [`Department`], [`Specialty`], [`Township`], [`Device`];
//! - [`mine`]: [`Mine`], its [`Disposition`], [`Stage`] and [`MineFacts`], [`MineEvent`],
//!   [`CaseRecord`];
//! - [`round`]: the [`AcceptanceRound`];
//! - [`record`]: the acceptance record's entity type, header fields and section names;
//! - [`letter`]: the experts' opinion letter's entity type, sections and fields;
//! - [`strokes`]: handwritten signatures ([`Strokes`]) and the one check of their format,
//!   [`parse_strokes`].

pub mod identity;
pub mod letter;
pub mod mine;
pub mod record;
pub mod round;
pub mod strokes;

pub use identity::*;
pub use mine::*;
pub use round::*;
pub use strokes::{Strokes, StrokesError, parse_strokes};
