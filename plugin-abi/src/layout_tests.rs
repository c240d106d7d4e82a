//! Pins the layout of every `#[repr(C)]` type (64-bit targets): a change here is an ABI
//! change, which needs a new major version or an appended field.

use std::mem::{align_of, offset_of, size_of};

use super::*;

#[test]
fn version_is_one_zero() {
    assert_eq!((ABI_MAJOR, ABI_MINOR), (1, 0));
    assert_eq!(ENTRY_SYMBOL, "dito_plugin_entry_v1");
}

#[test]
fn codes_are_u32() {
    for size in [
        size_of::<Code>(),
        size_of::<HostCode>(),
        size_of::<Target>(),
        size_of::<LogLevel>(),
    ] {
        assert_eq!(size, 4);
    }
    assert_eq!(
        [
            Code::CONTINUE.0,
            Code::RESPOND.0,
            Code::ERROR.0,
            Code::PANICKED.0
        ],
        [0, 1, 2, 3]
    );
    assert_eq!(
        [
            HostCode::OK.0,
            HostCode::INVALID.0,
            HostCode::NOT_ALLOWED.0,
            HostCode::NOT_FOUND.0
        ],
        [0, 1, 2, 3]
    );
    assert_eq!([Target::REQUEST.0, Target::RESPONSE.0], [0, 1]);
    assert_eq!((CAP_REQUEST, CAP_RESPONSE, SLOTS), (1, 2, 8));
}

#[test]
fn str_view_and_error_out() {
    assert_eq!((size_of::<StrView>(), align_of::<StrView>()), (16, 8));
    assert_eq!((offset_of!(StrView, ptr), offset_of!(StrView, len)), (0, 8));
    assert_eq!(size_of::<ErrorOut>(), 16);
    assert_eq!(
        (offset_of!(ErrorOut, ctx), offset_of!(ErrorOut, set)),
        (0, 8)
    );
    assert_eq!(size_of::<Exchange>(), 0);
}

#[test]
fn plugin_descriptor() {
    assert_eq!(size_of::<PluginDescriptor>(), 96);
    let offsets = [
        offset_of!(PluginDescriptor, struct_size),
        offset_of!(PluginDescriptor, abi_major),
        offset_of!(PluginDescriptor, abi_minor),
        offset_of!(PluginDescriptor, _reserved),
        offset_of!(PluginDescriptor, name),
        offset_of!(PluginDescriptor, version),
        offset_of!(PluginDescriptor, capabilities),
        offset_of!(PluginDescriptor, validate_config),
        offset_of!(PluginDescriptor, create),
        offset_of!(PluginDescriptor, destroy),
        offset_of!(PluginDescriptor, on_request),
        offset_of!(PluginDescriptor, on_response),
    ];
    assert_eq!(offsets, [0, 4, 8, 12, 16, 32, 48, 56, 64, 72, 80, 88]);
}

#[test]
fn host_api() {
    assert_eq!(size_of::<HostApi>(), 160);
    let offsets = [
        offset_of!(HostApi, struct_size),
        offset_of!(HostApi, abi_minor),
        offset_of!(HostApi, log),
        offset_of!(HostApi, counter_add),
        offset_of!(HostApi, method),
        offset_of!(HostApi, set_method),
        offset_of!(HostApi, path),
        offset_of!(HostApi, set_path),
        offset_of!(HostApi, query),
        offset_of!(HostApi, set_query),
        offset_of!(HostApi, header_count),
        offset_of!(HostApi, header_at),
        offset_of!(HostApi, header_get),
        offset_of!(HostApi, header_set),
        offset_of!(HostApi, header_append),
        offset_of!(HostApi, header_remove),
        offset_of!(HostApi, status),
        offset_of!(HostApi, set_status),
        offset_of!(HostApi, respond),
        offset_of!(HostApi, slot_get),
        offset_of!(HostApi, slot_set),
    ];
    let expected: Vec<usize> = [0, 4].into_iter().chain((1..20).map(|i| i * 8)).collect();
    assert_eq!(offsets.to_vec(), expected);
}
