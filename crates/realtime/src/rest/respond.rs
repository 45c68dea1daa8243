//! Answers in Cumulocity's media types: one thing (`managedObject`, `operation`…) or a
//! paged collection `{"<things>": [...], "statistics": {...}, "self", "next", "prev"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::request::{Ctx, Paging};

/// `application/vnd.com.nsn.cumulocity.<thing>+json;charset=UTF-8;ver=0.9`.
pub fn media_type(thing: &str) -> String {
    format!("application/vnd.com.nsn.cumulocity.{thing}+json;charset=UTF-8;ver=0.9")
}

/// `body` with status `status` as the vendor type of `thing`.
pub fn vendor(status: StatusCode, thing: &str, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    if let Ok(value) = HeaderValue::from_str(&media_type(thing)) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// One page of a list. `key` is the array's name (`managedObjects`), `thing` the
/// collection's media type (`managedObjectCollection`). `next` is given while the page
/// is full; a page past the end is an empty array. `total` (the number of matching
/// items, counted when the client asked with `withTotalPages` or `withTotalElements`)
/// adds `totalPages` and `totalElements` to the statistics.
pub fn collection(
    ctx: &Ctx,
    paging: Paging,
    key: &str,
    thing: &str,
    items: Vec<Value>,
    total: Option<i64>,
) -> Response {
    let full = items.len() as i64 >= paging.size;
    let mut body = Map::new();
    body.insert(
        "self".into(),
        Value::String(page_link(ctx, paging, paging.current)),
    );
    body.insert(key.into(), Value::Array(items));
    let mut statistics = json!({"currentPage": paging.current, "pageSize": paging.size});
    if let Some(total) = total {
        statistics["totalPages"] = json!((total + paging.size - 1) / paging.size);
        statistics["totalElements"] = json!(total);
    }
    body.insert("statistics".into(), statistics);
    if full {
        body.insert(
            "next".into(),
            Value::String(page_link(ctx, paging, paging.current.saturating_add(1))),
        );
    }
    if paging.current > 1 {
        body.insert(
            "prev".into(),
            Value::String(page_link(ctx, paging, paging.current - 1)),
        );
    }
    vendor(StatusCode::OK, thing, Value::Object(body))
}

/// The request's own link with `currentPage` set to `page` and its other parameters kept.
fn page_link(ctx: &Ctx, paging: Paging, page: i64) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &ctx.query {
        if k != "currentPage" && k != "pageSize" {
            query.append_pair(k, v);
        }
    }
    query.append_pair("pageSize", &paging.size.to_string());
    query.append_pair("currentPage", &page.to_string());
    format!("{}?{}", ctx.link(&ctx.path), query.finish())
}

/// `{"id": "<id>", "self": <link>}`: a reference to a managed object.
pub fn object_ref(ctx: &Ctx, id: i64) -> Value {
    json!({"id": id.to_string(), "self": ctx.link(&format!("/inventory/managedObjects/{id}"))})
}
