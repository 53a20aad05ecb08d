//! Domain-separation strings: one per purpose, so a signature or key made for one
//! purpose never verifies or decrypts for another.

pub const ENVELOPE_SIGNATURE: &[u8] = b"roomscribe/envelope/v1/signature\0";
pub const ENVELOPE_KDF_SALT: &[u8] = b"roomscribe/envelope/v1/kdf";
pub const HELLO_SIGNATURE: &[u8] = b"roomscribe/hello/v1\0";
/// Label for the TLS keying-material exporter that binds a hello to one QUIC connection.
pub const HELLO_EXPORTER_LABEL: &[u8] = b"EXPORTER-roomscribe-hello-v1";
pub const ENROLL_MAC_KEY_INFO: &[u8] = b"roomscribe/enroll/v1/mac-key";
pub const ENROLL_REQUEST_MAC: &[u8] = b"roomscribe/enroll/v1/request\0";
pub const ENROLL_RESPONSE_MAC: &[u8] = b"roomscribe/enroll/v1/response\0";
pub const ENROLL_POSSESSION: &[u8] = b"roomscribe/enroll/v1/possession\0";
pub const COMMAND_SIGNATURE: &[u8] = b"roomscribe/command/v1\0";
pub const RESYNC_NOTICE_SIGNATURE: &[u8] = b"roomscribe/resync-notice/v1\0";
