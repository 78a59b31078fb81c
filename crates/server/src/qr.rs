//! QR codes of referral links (`/r/<code>/qr.svg`, `/r/<code>/qr.png`), for
//! flyers, receipts and the till. The `qrcode` crate encodes; the drawing is
//! ours so `size` is exact and `margin` is any number of modules. The QR
//! encodes the link tagged `ch=qr`, so scans count as their own channel.

use crate::problem::ApiError;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use qrcode::{Color, QrCode};
use sarafan_core::link::ReferralCode;
use sarafan_core::FieldError;
use std::fmt::Write;

/// Image side in pixels: default and bounds.
const SIZE: (u32, u32, u32) = (256, 64, 2048);
/// Quiet zone in modules: default and bounds (the standard asks for 4).
const MARGIN: (u32, u32, u32) = (4, 0, 16);

/// The light and dark modules of a QR code, with its drawing parameters.
struct Drawing {
    modules: Vec<bool>,
    width: u32,
    margin: u32,
    size: u32,
}

impl Drawing {
    /// Pixels per module, and the offset that centres the code in `size`.
    fn scale(&self) -> (u32, u32) {
        let total = self.width + 2 * self.margin;
        let module = self.size / total;
        (
            module,
            (self.size - module * total) / 2 + self.margin * module,
        )
    }

    fn dark(&self, x: u32, y: u32) -> bool {
        self.modules[(y * self.width + x) as usize]
    }

    fn svg(&self) -> String {
        let total = self.width + 2 * self.margin;
        let mut path = String::new();
        for y in 0..self.width {
            for x in 0..self.width {
                if self.dark(x, y) {
                    let _ = write!(path, "M{} {}h1v1h-1z", x + self.margin, y + self.margin);
                }
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{s}\" height=\"{s}\" \
             viewBox=\"0 0 {total} {total}\" shape-rendering=\"crispEdges\">\
             <rect width=\"{total}\" height=\"{total}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>",
            s = self.size
        )
    }

    fn png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let (module, offset) = self.scale();
        let mut pixels = vec![255u8; (self.size * self.size) as usize];
        for y in 0..self.width {
            for x in 0..self.width {
                if !self.dark(x, y) {
                    continue;
                }
                for py in 0..module {
                    let row = ((offset + y * module + py) * self.size) as usize;
                    let start = row + (offset + x * module) as usize;
                    pixels[start..start + module as usize].fill(0);
                }
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.size, self.size);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
        Ok(out)
    }
}

/// Reads `size` and `margin` from the query; anything else is refused.
fn params(query: Option<&str>) -> Result<(u32, u32), ApiError> {
    let (mut size, mut margin) = (SIZE.0, MARGIN.0);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let (slot, (_, min, max)) = match &*key {
            "size" => (&mut size, SIZE),
            "margin" => (&mut margin, MARGIN),
            other => {
                return Err(ApiError::InvalidQuery(FieldError::new(
                    other,
                    "is not a parameter here; use size and margin",
                )))
            }
        };
        *slot = value
            .parse()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| {
                ApiError::InvalidQuery(FieldError::new(
                    &*key,
                    format!("must be a whole number from {min} to {max} (got {value:?})"),
                ))
            })?;
    }
    Ok((size, margin))
}

/// Encodes the code's link after checking the code and the parameters.
async fn drawing(state: &AppState, raw: &str, uri: &Uri) -> Result<Drawing, ApiError> {
    let (size, margin) = params(uri.query())?;
    let unknown = || ApiError::not_found(format!("no referral code {raw:?}"));
    let code = ReferralCode::parse(raw).map_err(|_| unknown())?;
    let target = state.links.target(&state.store, &code).await?;
    let target = target.ok_or_else(unknown)?;
    let link = format!("{}?ch=qr", state.links.link(&target.code));
    encode(&link, size, margin)
}

/// Draws `text` as a QR code of `size` pixels with `margin` modules.
fn encode(text: &str, size: u32, margin: u32) -> Result<Drawing, ApiError> {
    let qr = QrCode::new(text.as_bytes())
        .map_err(|e| ApiError::Internal(format!("QR encoding: {e}")))?;
    let width = qr.width() as u32;
    let drawing = Drawing {
        modules: qr
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect(),
        width,
        margin,
        size,
    };
    if drawing.scale().0 == 0 {
        let least = width + 2 * margin;
        return Err(ApiError::InvalidQuery(FieldError::new(
            "size",
            format!("is too small for this code with margin {margin}: at least {least}"),
        )));
    }
    Ok(drawing)
}

/// `text` as an SVG QR code of the default size, for embedding in a page
/// (the member card).
pub(crate) fn svg_of(text: &str) -> Result<String, ApiError> {
    Ok(encode(text, SIZE.0, MARGIN.0)?.svg())
}

fn image(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The link's QR code as SVG.
#[utoipa::path(get, path = "/r/{code}/qr.svg", tag = "referrals",
    params(("code" = String, Path), ("size" = Option<u32>, Query, description = "Side in pixels, 64 to 2048 (256)"),
           ("margin" = Option<u32>, Query, description = "Quiet zone in modules, 0 to 16 (4)")),
    responses(
        (status = 200, content_type = "image/svg+xml", body = String),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn svg(State(state): State<AppState>, Path(raw): Path<String>, uri: Uri) -> Response {
    match drawing(&state, &raw, &uri).await {
        Ok(d) => image("image/svg+xml", d.svg().into_bytes()),
        Err(e) => e.into_response(),
    }
}

/// The link's QR code as PNG, exactly `size` pixels square.
#[utoipa::path(get, path = "/r/{code}/qr.png", tag = "referrals",
    params(("code" = String, Path), ("size" = Option<u32>, Query, description = "Side in pixels, 64 to 2048 (256)"),
           ("margin" = Option<u32>, Query, description = "Quiet zone in modules, 0 to 16 (4)")),
    responses(
        (status = 200, content_type = "image/png", body = Vec<u8>),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn png(State(state): State<AppState>, Path(raw): Path<String>, uri: Uri) -> Response {
    let result = drawing(&state, &raw, &uri).await.and_then(|d| {
        d.png()
            .map_err(|e| ApiError::Internal(format!("PNG encoding: {e}")))
    });
    match result {
        Ok(bytes) => image("image/png", bytes),
        Err(e) => e.into_response(),
    }
}
