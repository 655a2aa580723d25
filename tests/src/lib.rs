//! ZVerse's integration, model, crash and fault tests. Not written yet: they arrive with the
//! engine. The core's own tests live beside its code in `core/`.
