//! The Rust/WGSL contract checked with naga, without a GPU: every module validates, the
//! subgroup and f16 variants need their capabilities, `Params` has the same layout on both
//! sides, each kernel binds what its bindings struct names, and the prelude declares the
//! Rust constants.

use super::*;

fn validate(source: &str, caps: naga::valid::Capabilities) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    // The pipelines use entry point `main`, a compute shader of WG invocations.
    let main = module.entry_points.iter().find(|e| e.name == "main");
    match main {
        Some(e)
            if e.stage == naga::ShaderStage::Compute
                && e.workgroup_size == [WORKGROUP_SIZE, 1, 1] => {}
        _ => return Err("no compute entry point `main` with @workgroup_size(256)".into()),
    }
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .map_err(|e| e.emit_to_string(source))?;
    Ok(())
}

/// Every module parses and validates with naga, with and without subgroups; needs no GPU.
#[test]
fn every_shader_module_validates() {
    use naga::valid::Capabilities as Caps;
    for spec in ALL_KERNELS {
        for f16 in [false, true] {
            let half = if f16 {
                Caps::SHADER_FLOAT16
            } else {
                Caps::empty()
            };
            let plain = module_source(&spec, false, f16);
            validate(&plain, half)
                .unwrap_or_else(|e| panic!("{} (workgroup, f16 {f16}): {e}", spec.name));
            let sub = module_source(&spec, true, f16);
            validate(&sub, Caps::SUBGROUP | half)
                .unwrap_or_else(|e| panic!("{} (subgroup, f16 {f16}): {e}", spec.name));
        }
    }
}

/// The subgroup variant is rejected without the capability, so a kernel that needs it
/// can never reach an adapter that lacks it unnoticed.
#[test]
fn subgroup_modules_need_the_capability() {
    let sub = module_source(&STATS_PARTIAL, true, false);
    assert!(validate(&sub, naga::valid::Capabilities::empty()).is_err());
    let half = module_source(&STATS_PARTIAL, false, true);
    assert!(validate(&half, naga::valid::Capabilities::empty()).is_err());
}

/// `Params` in Rust and in WGSL: the same members, in the same order, at the same
/// offsets, and the same size (read from the module with naga).
#[test]
fn params_layout_matches_wgsl() {
    use std::mem::offset_of;
    let rust = [
        ("outer", offset_of!(Params, outer)),
        ("channels", offset_of!(Params, channels)),
        ("inner", offset_of!(Params, inner)),
        ("count", offset_of!(Params, count)),
        ("base", offset_of!(Params, base)),
        ("len", offset_of!(Params, len)),
        ("chunk_len", offset_of!(Params, chunk_len)),
        ("chunks", offset_of!(Params, chunks)),
        ("slot_base", offset_of!(Params, slot_base)),
        ("slots", offset_of!(Params, slots)),
        ("lanes", offset_of!(Params, lanes)),
        ("zero", offset_of!(Params, zero)),
        ("eps", offset_of!(Params, eps)),
        ("momentum", offset_of!(Params, momentum)),
        ("flags", offset_of!(Params, flags)),
        ("merge_width", offset_of!(Params, merge_width)),
    ];
    let source = module_source(&NORMALIZE, false, false);
    let module = naga::front::wgsl::parse_str(&source).unwrap();
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("Params"))
        .expect("struct Params in common.wgsl");
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("Params is not a struct");
    };
    let wgsl: Vec<(&str, usize)> = members
        .iter()
        .map(|m| (m.name.as_deref().unwrap_or(""), m.offset as usize))
        .collect();
    assert_eq!(wgsl, rust, "Params members and offsets, WGSL vs Rust");
    assert_eq!(*span as usize, std::mem::size_of::<Params>());
}

/// Each kernel's bindings in WGSL are those its bindings struct (and so its bind group
/// layout and every call site) names: `Params` as the uniform `p` at binding 0, then
/// storage arrays of the listed names, element sizes and accesses (`read` where the struct
/// marks the field so, else `read_write`) at 1, 2, ..., in group 0, and nothing else.
#[test]
fn kernel_bindings_match_their_specs() {
    for spec in ALL_KERNELS {
        let source = module_source(&spec, false, false);
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        let mut bound: Vec<(u32, String, String, Option<u32>)> = module
            .global_variables
            .iter()
            .filter_map(|(_, g)| {
                let b = g.binding.as_ref()?;
                assert_eq!(
                    b.group, 0,
                    "{}: {:?} in group {}",
                    spec.name, g.name, b.group
                );
                let stride = match &module.types[g.ty].inner {
                    naga::TypeInner::Array { stride, .. } => Some(*stride),
                    _ => None,
                };
                let name = g.name.clone().unwrap_or_default();
                Some((b.binding, name, format!("{:?}", g.space), stride))
            })
            .collect();
        bound.sort();
        let uniform = format!("{:?}", naga::AddressSpace::Uniform);
        let mut want = vec![(0, "p".to_string(), uniform, None)];
        let space = |read_only: bool| {
            let mut access = naga::StorageAccess::LOAD;
            access.set(naga::StorageAccess::STORE, !read_only);
            format!("{:?}", naga::AddressSpace::Storage { access })
        };
        assert_eq!(spec.read_only.len(), spec.storage.len(), "{}", spec.name);
        let bindings = spec.storage.iter().zip(spec.names).zip(spec.read_only);
        for (i, ((&size, name), &read_only)) in bindings.enumerate() {
            want.push((
                i as u32 + 1,
                name.to_string(),
                space(read_only),
                Some(size as u32),
            ));
        }
        assert_eq!(
            bound, want,
            "{}: bindings (binding, name, space, stride)",
            spec.name
        );
    }
}

/// wgpu rejects a dispatch that binds one buffer both read-only and read-write, and
/// callers may give slices of one buffer for several tensors: a kernel binds inputs `read`
/// only where every binding it may write is the crate's own scratch (`partials`, `chan`),
/// which no caller's buffer can be. The read-only kernels are the partial passes.
#[test]
fn read_only_inputs_beside_scratch_only() {
    const SCRATCH: [&str; 2] = ["partials", "chan"];
    let mut read_only_kernels = Vec::new();
    for spec in ALL_KERNELS {
        if !spec.read_only.contains(&true) {
            continue;
        }
        read_only_kernels.push(spec.name);
        for (name, &read_only) in spec.names.iter().zip(spec.read_only) {
            assert!(
                read_only || SCRATCH.contains(name),
                "{}: {name} is read_write beside read-only inputs",
                spec.name
            );
        }
    }
    read_only_kernels.sort();
    assert_eq!(
        read_only_kernels,
        [
            "backward_partial",
            "backward_partial_rows",
            "stats_partial",
            "stats_partial_rows"
        ]
    );
}

/// The generated prelude declares every flag once, with its Rust value, and `WG`.
#[test]
fn prelude_declares_the_rust_constants() {
    let prelude = wgsl_prelude(false);
    assert!(prelude.contains(&format!("const WG: u32 = {WORKGROUP_SIZE}u;")));
    for (name, bit) in FLAGS {
        assert_eq!(prelude.matches(&format!("const {name}: u32 =")).count(), 1);
        assert!(prelude.contains(&format!("const {name}: u32 = {bit}u;")));
    }
    for name in Specialization::NAMES {
        assert_eq!(
            prelude.matches(&format!("override {name}: bool")).count(),
            1
        );
    }
    assert!(FLAGS.iter().all(|(_, b)| b.is_power_of_two()));
    let bits = FLAGS.iter().fold(0, |all, (_, b)| all | b);
    assert_eq!(
        bits.count_ones() as usize,
        FLAGS.len(),
        "flags are distinct bits"
    );
}
