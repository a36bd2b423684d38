//! Image variants: a `ref` property to `files` may declare
//! `"processors": [{"type": "image", "variants": {"thumbnail": {"crop": "20x20"}}}]`, and each file uploaded into
//! it gets those variants, made in the background on the blocking pool (`status` `processing`, then `complete`,
//! or `failed`). A variant is one of:
//!
//! - `{"crop": "WxH"}`: scaled to cover W×H, then the middle W×H of it (QtEnginio's thumbnails);
//! - `{"scale": "WxH"}`: scaled to fit within W×H, keeping its proportions;
//! - `{"resize": "WxH"}`: scaled to exactly W×H.
//!
//! W and H are 1 to 4,096. Variants are PNG. An upload into such a property must be an image whose header says
//! at most 16,384 pixels a side and 50 megapixels in all (checked before the file is attached: 400 otherwise);
//! decoding is bounded in memory too, so a decompression bomb fails its variant rather than the server.

use std::path::Path;
use std::sync::LazyLock;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use updraft_blobs::BlobKey;
use updraft_core::ids::ObjectId;
use updraft_store::Access;

use super::bad;
use crate::ApiState;
use crate::error::EdsError;

const MAX_SIDE: u32 = 16_384;
const MAX_PIXELS: u64 = 50_000_000;
const MAX_VARIANT_SIDE: u32 = 4096;
/// The most bytes a decoder may allocate for one image.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// How a variant fits its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    Crop,
    Scale,
    Resize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Variant {
    fit: Fit,
    width: u32,
    height: u32,
}

/// The image variants a schema property declares, by name; an error message for a malformed declaration.
pub(crate) fn declared(property: &Value) -> Result<Vec<(String, Variant)>, String> {
    let mut variants = Vec::new();
    let Some(processors) = property.get("processors") else { return Ok(variants) };
    let processors = processors.as_array().ok_or("processors must be an array")?;
    for processor in processors {
        if processor.get("type").and_then(Value::as_str) != Some("image") {
            return Err("the only processor is {\"type\": \"image\", \"variants\": {…}}".into());
        }
        let declared =
            processor.get("variants").and_then(Value::as_object).ok_or("an image processor needs variants")?;
        for (name, spec) in declared {
            if !super::plain(name) || name == updraft_blobs::ORIGINAL {
                return Err(format!("variant name {name:?}: letters, digits and _, not \"original\""));
            }
            variants.push((name.clone(), variant(spec).ok_or_else(|| format!("variant {name:?}: {{\"crop\"|\"scale\"|\"resize\": \"WxH\"}} with W and H from 1 to {MAX_VARIANT_SIDE}"))?));
        }
    }
    Ok(variants)
}

fn variant(spec: &Value) -> Option<Variant> {
    let object = spec.as_object().filter(|it| it.len() == 1)?;
    let (kind, size) = object.iter().next()?;
    let fit = match kind.as_str() {
        "crop" => Fit::Crop,
        "scale" => Fit::Scale,
        "resize" => Fit::Resize,
        _ => return None,
    };
    let (width, height) = size.as_str()?.split_once('x')?;
    let side = |text: &str| text.parse::<u32>().ok().filter(|it| (1..=MAX_VARIANT_SIDE).contains(it));
    Some(Variant { fit, width: side(width)?, height: side(height)? })
}

/// The variants files uploaded into `property` of `object_type` get, from its schema.
pub(crate) async fn for_property(
    state: &ApiState,
    backend: &str,
    object_type: &str,
    property: &str,
) -> Result<Vec<(String, Variant)>, EdsError> {
    let Some(schema) = state.schemas.schema(backend, object_type).await? else { return Ok(Vec::new()) };
    let properties = schema.get("properties").and_then(Value::as_array).into_iter().flatten();
    let Some(declaration) = properties.into_iter().find(|it| it.get("name").and_then(Value::as_str) == Some(property))
    else {
        return Ok(Vec::new());
    };
    // Stored schemas were checked when saved.
    Ok(declared(declaration).unwrap_or_default())
}

/// The `variants` a new file starts with: each `processing`.
pub(crate) fn processing(variants: &[(String, Variant)]) -> Option<Value> {
    (!variants.is_empty()).then(|| {
        Value::Object(variants.iter().map(|(name, _)| (name.clone(), json!({"status": "processing"}))).collect())
    })
}

/// Refuses (400) a file that is not an image this server decodes, or one whose header says it is too large.
pub(crate) async fn check(path: &Path) -> Result<(), EdsError> {
    let path = path.to_owned();
    let probed = tokio::task::spawn_blocking(move || -> Result<(u32, u32), String> {
        let reader = image::ImageReader::open(&path).map_err(|err| err.to_string())?;
        let reader = reader.with_guessed_format().map_err(|err| err.to_string())?;
        if reader.format().is_none() {
            return Err("not an image".into());
        }
        reader.into_dimensions().map_err(|err| err.to_string())
    })
    .await
    .map_err(|_| bad("The image could not be read"))?;
    let (width, height) =
        probed.map_err(|err| bad(format!("This property takes images; the file is not one ({err})")))?;
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(bad(format!(
            "The image is {width}x{height}; this server takes at most {MAX_SIDE} pixels a side and {MAX_PIXELS} in all"
        )));
    }
    Ok(())
}

/// One render at a time per CPU, on the blocking pool.
static RENDERS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
});

/// Files whose variants were still being made when the server last stopped.
const RESUMED_AT_MOST: u32 = 100_000;

/// Makes again the variants whose render a stop cut off (they are still `processing`): at start, so that an
/// acknowledged upload gets its variants. A variant its schema no longer declares is marked `failed`.
pub(crate) async fn resume(state: ApiState) {
    let unrendered = match state.files.unrendered_files(RESUMED_AT_MOST).await {
        Ok(unrendered) => unrendered,
        Err(err) => return tracing::warn!(%err, "listing image variants to make failed"),
    };
    for (backend, id) in unrendered {
        let Ok(Some(file)) = state.files.file(&backend, id, false, Access::Everything).await else { continue };
        let pending: Vec<String> = file
            .variants
            .iter()
            .flat_map(|it| it.as_object())
            .flatten()
            .filter(|(_, it)| it.get("status").and_then(Value::as_str) == Some("processing"))
            .map(|(name, _)| name.clone())
            .collect();
        let declared =
            for_property(&state, &backend, &file.owner.object_type, &file.property).await.unwrap_or_default();
        let (todo, undeclared): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|name| declared.iter().any(|(it, _)| it == name));
        for name in undeclared {
            if let Err(err) = state.files.set_variant_status(&backend, id, &name, "failed").await {
                tracing::warn!(%err, file = %id, "recording an image variant failed");
            }
        }
        let variants: Vec<_> = declared.into_iter().filter(|(name, _)| todo.contains(name)).collect();
        if !variants.is_empty() {
            tracing::info!(file = %id, variants = variants.len(), "making image variants a stop cut off");
            tokio::spawn(render(state.clone(), backend, id, variants));
        }
    }
}

/// Makes the variants of a stored file, then marks each `complete` (or `failed`).
pub(crate) async fn render(state: ApiState, backend: String, file: ObjectId, variants: Vec<(String, Variant)>) {
    let Ok(_permit) = RENDERS.acquire().await else { return };
    let id = file.to_string();
    let outcome = make(&state, &backend, &id, &variants).await;
    let status = if let Err(err) = &outcome {
        tracing::warn!(%err, file = %id, "making image variants failed");
        "failed"
    } else {
        "complete"
    };
    for (name, _) in &variants {
        if let Err(err) = state.files.set_variant_status(&backend, file, name, status).await {
            tracing::warn!(%err, file = %id, "recording an image variant failed");
        }
    }
}

async fn make(state: &ApiState, backend: &str, id: &str, variants: &[(String, Variant)]) -> std::io::Result<()> {
    // The original, copied to a local file to decode (the blob store may be remote).
    let key = BlobKey { backend, file: id, variant: updraft_blobs::ORIGINAL };
    let mut opened = state.blobs.open(key, 0).await?.ok_or_else(|| std::io::Error::other("the original is gone"))?;
    let (mut copy, copy_path) = state.blobs.staging().await?;
    let copied = tokio::io::copy(&mut opened.reader, &mut copy).await;
    copy.flush().await?;
    drop(copy);
    let mut outputs = Vec::new();
    for _ in variants {
        let (_, path) = state.blobs.staging().await?;
        outputs.push(path);
    }
    let work = {
        let (copy_path, outputs, variants) = (copy_path.clone(), outputs.clone(), variants.to_vec());
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            copied.map_err(|err| err.to_string())?;
            let image = decode(&copy_path)?;
            for ((_, variant), output) in variants.iter().zip(&outputs) {
                let made = match variant.fit {
                    Fit::Crop => image.resize_to_fill(variant.width, variant.height, FILTER),
                    Fit::Scale => image.resize(variant.width, variant.height, FILTER),
                    Fit::Resize => image.resize_exact(variant.width, variant.height, FILTER),
                };
                made.save_with_format(output, image::ImageFormat::Png).map_err(|err| err.to_string())?;
            }
            Ok(())
        })
    };
    let result = work.await.map_err(std::io::Error::other).and_then(|it| it.map_err(std::io::Error::other));
    let _ = tokio::fs::remove_file(&copy_path).await;
    if let Err(err) = result {
        for output in &outputs {
            let _ = tokio::fs::remove_file(output).await;
        }
        return Err(err);
    }
    for ((name, _), output) in variants.iter().zip(&outputs) {
        state.blobs.put(BlobKey { backend, file: id, variant: name }, output).await?;
    }
    Ok(())
}

const FILTER: image::imageops::FilterType = image::imageops::FilterType::Triangle;

fn decode(path: &Path) -> Result<image::DynamicImage, String> {
    let mut reader = image::ImageReader::open(path).map_err(|err| err.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.with_guessed_format().map_err(|err| err.to_string())?.decode().map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_crop_scale_or_resize_to_a_bounded_box() {
        let property = json!({"processors": [{"type": "image", "variants": {
            "thumbnail": {"crop": "20x20"}, "fit": {"scale": "100x50"}, "exact": {"resize": "4096x1"}}}]});
        let variants = declared(&property).unwrap();
        assert_eq!(variants.len(), 3);
        assert!(variants.contains(&("thumbnail".into(), Variant { fit: Fit::Crop, width: 20, height: 20 })));
        assert!(declared(&json!({"name": "x"})).unwrap().is_empty());
        for wrong in [
            json!({"processors": {}}),
            json!({"processors": [{"type": "video", "variants": {}}]}),
            json!({"processors": [{"type": "image", "variants": {"t": {"crop": "0x20"}}}]}),
            json!({"processors": [{"type": "image", "variants": {"t": {"crop": "20x5000"}}}]}),
            json!({"processors": [{"type": "image", "variants": {"t": {"crop": "20"}}}]}),
            json!({"processors": [{"type": "image", "variants": {"t": {"blur": "2x2"}}}]}),
            json!({"processors": [{"type": "image", "variants": {"t": {"crop": "2x2", "scale": "2x2"}}}]}),
            json!({"processors": [{"type": "image", "variants": {"../x": {"crop": "2x2"}}}]}),
            json!({"processors": [{"type": "image", "variants": {"original": {"crop": "2x2"}}}]}),
        ] {
            assert!(declared(&wrong).is_err(), "{wrong}");
        }
    }
}
