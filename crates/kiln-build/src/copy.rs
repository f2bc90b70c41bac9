//! COPY/ADD semantics (being written).
