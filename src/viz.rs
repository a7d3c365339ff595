//! Pictures of what the model computed (filled in by the visualisation work).
