//! Yanshou sync protocol (skeleton; see issue "The sync protocol").
