//! The proxy-wasm ABI (0.2.1) itself: the host functions the filter imports and the callbacks it
//! exports, with no SDK between them. The one place with `unsafe`: every pointer the host is
//! given or gives back is handled here, and the rest of the crate sees safe functions.
//!
//! Why not the proxy-wasm crate: measured, the SDK is most of the module (its dispatcher, hash
//! maps with a seeded hasher, every callback of the ABI exported) and V8 compiles all of it with
//! TurboFan when each sidecar starts (Envoy turns Liftoff off), so its code costs every pod CPU
//! at start and memory for as long as it runs. Exporting only the callbacks meshtally uses also
//! means Envoy never enters the module for request or response bodies. `make bench` shows the
//! figures (module size, RSS, start-up, per-request instructions).
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ptr::{null, null_mut};

/// `proxy_get_buffer_bytes`'s buffer of the plugin's configuration.
const PLUGIN_CONFIGURATION: u32 = 7;
pub(crate) const REQUEST_HEADERS: u32 = 0;
pub(crate) const RESPONSE_HEADERS: u32 = 2;
pub(crate) const COUNTER: u32 = 0;
pub(crate) const HISTOGRAM: u32 = 2;
pub(crate) const LOG_INFO: u32 = 2;
pub(crate) const LOG_WARN: u32 = 3;
pub(crate) const LOG_ERROR: u32 = 4;

/// `Status::Ok`; anything else is a refusal (`NotFound` for an absent header or property).
const OK: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

/// A host status other than Ok.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused(pub u32);

fn status(code: u32) -> Result<(), Refused> {
    if code == OK {
        Ok(())
    } else {
        Err(Refused(code))
    }
}

/// Takes ownership of bytes the host wrote into memory it got from [`proxy_on_memory_allocate`].
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host filled `size` bytes of a block `proxy_on_memory_allocate(size)` returned,
    // which is a boxed slice of exactly `size` bytes: a Vec with that length and capacity.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Calls a host function that returns bytes through the two out-pointers: `None` when the host
/// says the value is absent (or refuses), the bytes otherwise.
fn bytes_out(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    if call(&mut data, &mut size) != OK {
        return None;
    }
    Some(owned(data, size))
}

pub(crate) fn log(level: u32, message: &str) {
    // SAFETY: the message is a live slice for the duration of the call.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

pub(crate) fn now_nanos() -> Option<u64> {
    let mut t: u64 = 0;
    // SAFETY: `t` is a live u64 the host writes once.
    status(unsafe { proxy_get_current_time_nanoseconds(&mut t) }).ok()?;
    Some(t)
}

pub(crate) fn plugin_configuration() -> Option<Vec<u8>> {
    // SAFETY: the out-pointers are live locals; the host allocates through our allocator.
    bytes_out(|d, s| unsafe { proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, usize::MAX, d, s) })
}

pub(crate) fn header(map: u32, name: &str) -> Option<Vec<u8>> {
    // SAFETY: `name` is a live slice; the out-pointers are live locals.
    bytes_out(|d, s| unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), d, s) })
}

/// Sets a header, replacing any value it had (the host adds it when absent).
pub(crate) fn set_header(map: u32, name: &str, value: &str) -> Result<(), Refused> {
    // SAFETY: both slices are live for the duration of the call.
    status(unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

/// A property by path; the ABI wants the segments joined by NUL. The paths the filter reads
/// are short, so they are joined on the stack: no allocation on the request path.
pub(crate) fn property(path: &[&str]) -> Option<Vec<u8>> {
    let mut buf = [0u8; 128];
    let mut len = 0;
    for (i, part) in path.iter().enumerate() {
        let sep: &[u8] = if i > 0 { b"\0" } else { b"" };
        for chunk in [sep, part.as_bytes()] {
            let end = len + chunk.len();
            buf.get_mut(len..end)?.copy_from_slice(chunk);
            len = end;
        }
    }
    let joined = buf.get(..len)?;
    // SAFETY: `joined` is live for the call; the out-pointers are live locals.
    bytes_out(|d, s| unsafe { proxy_get_property(joined.as_ptr(), joined.len(), d, s) })
}

/// Answers the stream locally. Headers go in the ABI's map encoding: the pair count, each
/// pair's two lengths, then each name and value NUL-terminated (all little-endian u32).
pub(crate) fn send_local_response(
    status_code: u32,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Refused> {
    let size = 4 + headers
        .iter()
        .map(|(k, v)| 10 + k.len() + v.len())
        .sum::<usize>();
    let mut map = Vec::with_capacity(size);
    map.extend_from_slice(&u32::try_from(headers.len()).unwrap_or(0).to_le_bytes());
    for (k, v) in headers {
        map.extend_from_slice(&u32::try_from(k.len()).unwrap_or(0).to_le_bytes());
        map.extend_from_slice(&u32::try_from(v.len()).unwrap_or(0).to_le_bytes());
    }
    for (k, v) in headers {
        map.extend_from_slice(k.as_bytes());
        map.push(0);
        map.extend_from_slice(v.as_bytes());
        map.push(0);
    }
    // SAFETY: every slice is live for the duration of the call; -1 says "not gRPC".
    status(unsafe {
        proxy_send_local_response(
            status_code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    })
}

pub(crate) fn define_metric(kind: u32, name: &str) -> Result<u32, Refused> {
    let mut id: u32 = 0;
    // SAFETY: `name` is live for the call; `id` is a live local the host writes once.
    status(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub(crate) fn increment_metric(id: u32) {
    // SAFETY: plain values only.
    let _ = unsafe { proxy_increment_metric(id, 1) };
}

pub(crate) fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values only.
    let _ = unsafe { proxy_record_metric(id, value) };
}

// ---- exports: the callbacks Envoy makes. Only these exist, so Envoy skips the rest (bodies,
// trailers, timers, gRPC), which an SDK exports and Envoy then calls on every stream.

/// The ABI version this module speaks; Envoy looks for the export's name.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// WASI reactor start: run the static constructors (wasi-libc's), as any cdylib must.
#[no_mangle]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    // SAFETY: called once by the host before any other export, as the reactor ABI requires.
    unsafe {
        __wasm_call_ctors();
    }
}

/// The host asks for `size` bytes to copy a value into; [`owned`] takes them back.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let block: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(size);
    Box::into_raw(block).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    crate::contexts::create(context_id, root_context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _configuration_size: usize) -> bool {
    crate::contexts::configure(root_context_id)
}

/// 0 continues the filter chain, 1 stops it (`Action::Continue` / `Action::Pause`).
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: usize,
    _end_of_stream: bool,
) -> u32 {
    crate::contexts::request_headers(context_id)
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _headers: usize,
    _end_of_stream: bool,
) -> u32 {
    crate::contexts::response_headers(context_id)
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    crate::contexts::log(context_id);
}

/// The context may go: nothing of ours is pending.
#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    crate::contexts::delete(context_id);
}
