//! Every kernel module, in every variant the crate builds (element type f32 or f16,
//! reduction through subgroups or shared memory), translated by naga's back ends as wgpu
//! translates WGSL for each backend: SPIR-V (Vulkan, checked by `spirv-val`), MSL (Metal),
//! HLSL (DX12) and GLSL (GL). Needs no GPU, so what cannot run here is still translated
//! and validated. The variants a backend cannot run (f16 and subgroups on GL) are not built
//! there: the crate refuses them on such a device with its typed errors, which the suite
//! asserts on GL (`tests/suite/f16.rs`: `F16Unavailable`; `tests/suite/errors/device.rs`:
//! `SubgroupsUnavailable`).

use super::*;
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ShaderStages, SubgroupOperationSet, ValidationFlags};

/// One variant of a kernel module: the pipelines the crate can build from it.
#[derive(Clone, Copy, Debug)]
struct Variant {
    subgroups: bool,
    f16: bool,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        subgroups: false,
        f16: false,
    },
    Variant {
        subgroups: true,
        f16: false,
    },
    Variant {
        subgroups: false,
        f16: true,
    },
    Variant {
        subgroups: true,
        f16: true,
    },
];

/// Every (kernel, variant) module, parsed and validated as wgpu does.
fn modules() -> Vec<(String, Variant, naga::Module, ModuleInfo)> {
    let mut out = Vec::new();
    for spec in ALL_KERNELS {
        for v in VARIANTS {
            let source = module_source(&spec, v.subgroups, v.f16);
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{} {v:?}: {}", spec.name, e.emit_to_string(&source)));
            let mut caps = Capabilities::empty();
            caps.set(Capabilities::SUBGROUP, v.subgroups);
            caps.set(Capabilities::SHADER_FLOAT16, v.f16);
            let info = naga::valid::Validator::new(ValidationFlags::all(), caps)
                .subgroup_stages(ShaderStages::COMPUTE)
                .subgroup_operations(SubgroupOperationSet::all())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{} {v:?}: {}", spec.name, e.emit_to_string(&source)));
            // Each specialization the crate builds, its constants substituted as wgpu does
            // before it hands a module to a back end.
            for (i, special) in specializations(&spec).into_iter().enumerate() {
                let constants = special
                    .constants()
                    .iter()
                    .map(|&(k, v)| (k.to_string(), v))
                    .collect();
                let (m, inf) = naga::back::pipeline_constants::process_overrides(
                    &module, &info, None, &constants,
                )
                .unwrap_or_else(|e| panic!("{} {v:?} {special:?}: {e}", spec.name));
                let name = format!("{}-{i}", spec.name);
                out.push((name, v, m.into_owned(), inf.into_owned()));
            }
        }
    }
    out
}

/// Whether the kernel of module `name` (`{kernel}-{specialization}`) binds tensors of `T`.
fn binds_tensors(name: &str) -> bool {
    let kernel = name.rsplit_once('-').map_or(name, |(k, _)| k);
    let spec = ALL_KERNELS.iter().find(|s| s.name == kernel).unwrap();
    spec.source.contains("array<T>") || spec.source.contains("array<vec4<T>>")
}

/// Modules `modules` gives: every kernel's specializations in every variant.
fn module_count() -> usize {
    let specials: usize = ALL_KERNELS.iter().map(|s| specializations(s).len()).sum();
    specials * VARIANTS.len()
}

/// Bounds checks as wgpu asks of every back end (robust buffer access).
fn policies() -> naga::proc::BoundsCheckPolicies {
    naga::proc::BoundsCheckPolicies {
        index: naga::proc::BoundsCheckPolicy::Restrict,
        buffer: naga::proc::BoundsCheckPolicy::Restrict,
        image_load: naga::proc::BoundsCheckPolicy::Restrict,
        binding_array: naga::proc::BoundsCheckPolicy::Restrict,
    }
}

/// `spirv-val`, or `None` with the reason. CI sets `WGPU_BATCHNORM_REQUIRE_SPIRV_VAL=1`,
/// which turns a missing tool into a failure.
fn spirv_val() -> Option<&'static str> {
    let found = std::process::Command::new("spirv-val")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        let msg = "spirv-val not found (Debian: apt-get install spirv-tools): SPIR-V translated but not validated";
        assert!(
            std::env::var_os("WGPU_BATCHNORM_REQUIRE_SPIRV_VAL").is_none(),
            "{msg}"
        );
        eprintln!("{msg}");
        return None;
    }
    Some("spirv-val")
}

/// SPIR-V 1.3 (Vulkan 1.1, the first with subgroup operations), as wgpu writes it for a
/// Vulkan 1.1+ device, each module checked by `spirv-val --target-env vulkan1.1`.
#[test]
fn spirv_for_vulkan_validates() {
    let tool = spirv_val();
    let dir = std::env::temp_dir().join(format!("wgpu-batchnorm-spirv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = spv::Options {
        lang_version: (1, 3),
        bounds_check_policies: policies(),
        flags: spv::WriterFlags::empty(),
        ..Default::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: "main".to_string(),
    };
    let mut checked = 0;
    for (name, v, module, info) in modules() {
        let words = spv::write_vec(&module, &info, &options, Some(&pipeline))
            .unwrap_or_else(|e| panic!("{name} {v:?}: SPIR-V: {e}"));
        assert_eq!(
            words.first(),
            Some(&0x0723_0203),
            "{name}: SPIR-V magic number"
        );
        if let Some(tool) = tool {
            let path = dir.join(format!("{name}-{}-{}.spv", v.subgroups, v.f16));
            std::fs::write(&path, bytemuck::cast_slice::<u32, u8>(&words)).unwrap();
            let out = std::process::Command::new(tool)
                .args(["--target-env", "vulkan1.1"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name} {v:?}: spirv-val: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    if tool.is_some() {
        assert_eq!(checked, module_count());
    }
}

/// MSL 2.4 (macOS 12, iOS 15: Metal 3 era devices, with SIMD-group and half support), each
/// binding mapped to a buffer slot as wgpu maps them, plus the sizes buffer wgpu adds for
/// runtime-sized arrays.
#[test]
fn msl_for_metal_translates() {
    for (name, v, module, info) in modules() {
        let mut resources = msl::BindingMap::default();
        let mut slots = 0u8;
        for (_, var) in module.global_variables.iter() {
            if let Some(binding) = &var.binding {
                let mutable = matches!(var.space, naga::AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE));
                let target = msl::BindTarget {
                    buffer: Some(slots),
                    mutable,
                    ..Default::default()
                };
                resources.insert(*binding, target);
                slots += 1;
            }
        }
        let entry = msl::EntryPointResources {
            resources,
            immediates_buffer: None,
            sizes_buffer: Some(slots),
        };
        let options = msl::Options {
            lang_version: (2, 4),
            per_entry_point_map: [("main".to_string(), entry)].into(),
            fake_missing_bindings: false,
            bounds_check_policies: policies(),
            zero_initialize_workgroup_memory: true,
            force_loop_bounding: true,
            ..Default::default()
        };
        let pipeline = msl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, "main".to_string())),
            ..Default::default()
        };
        let (text, _) = msl::write_string(&module, &info, &options, &pipeline)
            .unwrap_or_else(|e| panic!("{name} {v:?}: MSL: {e}"));
        assert!(
            text.contains("kernel void main_"),
            "{name} {v:?}: no compute entry point"
        );
        // (Kernels without tensors of T keep no trace of it once wgpu has substituted the
        // constants and compacted the module.)
        if v.f16 && binds_tensors(&name) {
            assert!(text.contains("half"), "{name}: f16 tensors as MSL half");
        }
    }
}

/// HLSL at the lowest shader model each variant needs: 5.1 (DX12's floor), 6.0 for wave
/// (subgroup) operations, 6.2 for 16-bit types (wgpu gives `SHADER_F16` only to D3D12
/// devices with shader model 6.2 and native 16-bit types, so the f16 variants reach only
/// those).
#[test]
fn hlsl_for_dx12_translates_at_the_needed_shader_model() {
    let write = |module: &naga::Module, info: &ModuleInfo, model| {
        let options = hlsl::Options {
            shader_model: model,
            fake_missing_bindings: true,
            zero_initialize_workgroup_memory: true,
            restrict_indexing: true,
            force_loop_bounding: true,
            ..Default::default()
        };
        let pipeline = hlsl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, "main".to_string())),
        };
        let mut text = String::new();
        hlsl::Writer::new(&mut text, &options, &pipeline)
            .write(module, info, None)
            .map(|_| text)
    };
    for (name, v, module, info) in modules() {
        let model = match v {
            Variant { f16: true, .. } => hlsl::ShaderModel::V6_2,
            Variant {
                subgroups: true, ..
            } => hlsl::ShaderModel::V6_0,
            _ => hlsl::ShaderModel::V5_1,
        };
        let text = write(&module, &info, model)
            .unwrap_or_else(|e| panic!("{name} {v:?}: HLSL {model:?}: {e}"));
        assert!(
            text.contains("[numthreads(256, 1, 1)]"),
            "{name} {v:?}: workgroup size"
        );
    }
}

/// GLSL for GL's compute shaders: ES 3.1 and desktop 4.3 (what wgpu's GL backend targets).
/// wgpu's GL backend has neither subgroups nor f16, so only the f32 shared-memory variant
/// is built there (the crate picks it; asking for the others is a typed error, see above).
#[test]
fn glsl_for_gl_translates_the_gl_variant() {
    let versions = [glsl::Version::new_gles(310), glsl::Version::Desktop(430)];
    let write = |module: &naga::Module, info: &ModuleInfo, version| {
        let options = glsl::Options {
            version,
            zero_initialize_workgroup_memory: true,
            ..Default::default()
        };
        let pipeline = glsl::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".to_string(),
            multiview: None,
        };
        let mut text = String::new();
        let mut writer =
            glsl::Writer::new(&mut text, module, info, &options, &pipeline, policies())?;
        writer.write()?;
        Ok::<_, glsl::Error>(text)
    };
    let gl_variants = modules()
        .into_iter()
        .filter(|(_, v, ..)| !v.subgroups && !v.f16);
    let mut translated = 0;
    for (name, _, module, info) in gl_variants {
        for version in versions {
            let text = write(&module, &info, version)
                .unwrap_or_else(|e| panic!("{name} {version}: GLSL: {e}"));
            assert!(
                text.contains("local_size_x = 256"),
                "{name} {version}: workgroup size"
            );
            translated += 1;
        }
    }
    assert_eq!(translated, 2 * module_count() / VARIANTS.len());
}
