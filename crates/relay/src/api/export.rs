//! Lists as CSV downloads (RFC 4180, through the `csv` crate) and the query-string
//! extractor whose rejections use the API's error shape.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat};
use portico_store::{AuditRecord, ConnectionSessionRecord};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};

/// A query string whose rejections (unknown parameters, bad numbers) are answered in the
/// error shape.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// How a list is answered: JSON (the default) or a CSV download.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// Unix milliseconds as RFC 3339 UTC (`2026-11-22T15:47:16.000Z`).
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A CSV attachment named `filename` with a header row and one row per record.
fn attachment(filename: &str, header: &[&str], rows: Vec<Vec<String>>) -> ApiResult<Response> {
    let bytes = write_csv(header, rows).map_err(|e| {
        tracing::error!(error = %e, "cannot write a CSV export");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "The CSV export could not be written",
        )
    })?;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn write_csv(header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>, String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).map_err(|e| e.to_string())?;
    for row in rows {
        writer.write_record(&row).map_err(|e| e.to_string())?;
    }
    writer.into_inner().map_err(|e| e.to_string())
}

pub fn connections_csv(sessions: &[ConnectionSessionRecord]) -> ApiResult<Response> {
    let header = [
        "id",
        "user",
        "device",
        "application",
        "started",
        "ended",
        "end_reason",
        "bytes_up",
        "bytes_down",
    ];
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.user_name.clone(),
                s.device.clone(),
                s.application.clone(),
                rfc3339(s.started_ms),
                s.ended_ms.map(rfc3339).unwrap_or_default(),
                s.end_reason.clone().unwrap_or_default(),
                s.bytes_up.to_string(),
                s.bytes_down.to_string(),
            ]
        })
        .collect();
    attachment("connections.csv", &header, rows)
}

pub fn audit_csv(records: &[AuditRecord]) -> ApiResult<Response> {
    let header = ["id", "at", "actor", "action", "object", "detail"];
    let rows = records
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                rfc3339(a.at_ms),
                a.actor.clone(),
                a.action.clone(),
                a.object.clone(),
                a.detail.clone(),
            ]
        })
        .collect();
    attachment("audit.csv", &header, rows)
}
