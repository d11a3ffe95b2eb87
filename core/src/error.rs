//! Errors of the core layer and their classification.
//!
//! Every error that can stop a connector is classified once, where it is made, as
//! [`ErrorClass::Transient`] (the connector retries with backoff: a network blip, a
//! broker or registry briefly away) or [`ErrorClass::Definite`] (retrying cannot help:
//! bad configuration, a missing privilege, an incompatible schema; the connector stops
//! with a status that says what to do). Connector crates have their own typed errors and
//! convert them into [`SourceError`] / [`SinkError`] with the right class; the source
//! chain is always kept.

use crate::position::SourcePosition;

/// A boxed error cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Retry with backoff; nothing is lost meanwhile.
    Transient,
    /// Stop the connector and tell the operator what to do.
    Definite,
}

/// Errors that know their [`ErrorClass`].
pub trait Classify {
    /// How the supervisor treats this error.
    fn class(&self) -> ErrorClass;
}

macro_rules! layer_error {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            /// Retrying can help.
            #[error("{} error (transient): {context}", $what)]
            Transient {
                /// What was being done.
                context: String,
                /// The cause.
                #[source]
                source: BoxError,
            },
            /// Retrying cannot help; `hint` says what the operator should do.
            #[error("{} error: {context}. To fix: {hint}", $what)]
            Definite {
                /// What went wrong.
                context: String,
                /// What to do about it.
                hint: String,
                /// The cause, if any.
                #[source]
                source: Option<BoxError>,
            },
        }

        impl $name {
            /// A transient error with its cause.
            pub fn transient(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
                Self::Transient { context: context.into(), source: source.into() }
            }

            /// A definite error with the operator's fix.
            pub fn definite(context: impl Into<String>, hint: impl Into<String>) -> Self {
                Self::Definite { context: context.into(), hint: hint.into(), source: None }
            }

            /// A definite error with the operator's fix and its cause.
            pub fn definite_with(
                context: impl Into<String>,
                hint: impl Into<String>,
                source: impl Into<BoxError>,
            ) -> Self {
                Self::Definite {
                    context: context.into(),
                    hint: hint.into(),
                    source: Some(source.into()),
                }
            }
        }

        impl Classify for $name {
            fn class(&self) -> ErrorClass {
                match self {
                    Self::Transient { .. } => ErrorClass::Transient,
                    Self::Definite { .. } => ErrorClass::Definite,
                }
            }
        }
    };
}

layer_error!(
    /// Error of a source (database connection, decoding, snapshot).
    SourceError,
    "source"
);
layer_error!(
    /// Error of a sink (Kafka, lake, registry).
    SinkError,
    "sink"
);
layer_error!(
    /// Error of an offset store.
    OffsetStoreError,
    "offset store"
);

/// Whether `error` or any cause in its chain says that the peer closed or reset the
/// connection. A server that restarts or shuts down does this to every client, also in
/// the middle of a TLS handshake, where the TLS library reports it as a handshake
/// failure (OpenSSL: a syscall error without an I/O error, "unexpected EOF"). Such a
/// failure is transient whatever the layer above calls it; a certificate that does not
/// verify, or a server that does not speak TLS, is not one of these.
pub fn peer_hung_up(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
            )
        {
            return true;
        }
        if e.to_string().contains("unexpected EOF") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Why a pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The offset store failed.
    #[error(transparent)]
    Offsets(#[from] OffsetStoreError),
    /// The source emitted a position at or before one it emitted earlier; a bug in the
    /// source, never retried because it would risk duplicates or loss.
    #[error("source emitted position {next:?} after {previous:?}; positions must increase")]
    OutOfOrder {
        /// The earlier position.
        previous: Box<SourcePosition>,
        /// The offending position.
        next: Box<SourcePosition>,
    },
    /// The source task ended abnormally (panicked or was aborted).
    #[error("source task ended abnormally: {0}")]
    SourceTask(String),
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Source(e) => e.class(),
            Self::Sink(e) => e.class(),
            Self::Offsets(e) => e.class(),
            Self::OutOfOrder { .. } | Self::SourceTask(_) => ErrorClass::Definite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn classification_and_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = SourceError::transient("reading the replication stream", io);
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("reset by peer")
        );

        let d = SinkError::definite("schema rejected", "make the change backward compatible");
        assert_eq!(d.class(), ErrorClass::Definite);
        assert!(d.to_string().contains("To fix: make the change"));

        let p: PipelineError = d.into();
        assert_eq!(p.class(), ErrorClass::Definite);
    }

    #[test]
    fn a_peer_that_hung_up_is_recognised_anywhere_in_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("TLS handshake: {0}")]
        struct Handshake(#[source] std::io::Error);
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(peer_hung_up(&Handshake(reset)));
        // OpenSSL's wording for a socket closed under the handshake, as a message only.
        let eof = std::io::Error::other("TLS error: `unexpected EOF'");
        assert!(peer_hung_up(&SourceError::transient("connecting", eof)));
        let verify = std::io::Error::other("certificate verify failed");
        assert!(!peer_hung_up(&Handshake(verify)));
        let refused = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        assert!(!peer_hung_up(&refused));
    }
}
