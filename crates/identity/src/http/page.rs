//! The login page: a small, self-contained HTML form (no scripts, no external assets).

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the login page shows.
pub struct LoginPage<'a> {
    pub tenant: &'a str,
    pub return_to: &'a str,
    pub user_name: &'a str,
    pub message: Option<&'a str>,
    /// The tenant's external provider (issuer), shown as a second way in.
    pub external_provider: Option<&'a str>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;\
min-height:100vh;align-items:center;justify-content:center}main{background:#fff;padding:2rem 2.5rem;\
border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15);width:20rem}h1{font-size:1.3rem;margin:0 0 1.2rem}\
label{display:block;margin:.8rem 0 .3rem;font-size:.9rem}input{width:100%;box-sizing:border-box;\
padding:.5rem;font-size:1rem;border:1px solid #bbb;border-radius:4px}button,a.button{display:block;\
width:100%;box-sizing:border-box;margin-top:1.2rem;padding:.6rem;font-size:1rem;border:0;border-radius:4px;\
background:#2457a6;color:#fff;text-align:center;text-decoration:none;cursor:pointer}a.button{background:#555}\
p.message{color:#a61b1b;margin:0 0 .5rem}p.or{text-align:center;color:#777;margin:1rem 0 0}";

pub fn login(page: &LoginPage<'_>) -> String {
    let message = page
        .message
        .map(|m| format!("<p class=\"message\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    let external = page
        .external_provider
        .map(|issuer| {
            format!(
                "<p class=\"or\">or</p><a class=\"button\" href=\"/login/oidc?return={}\" title=\"{}\">Log in with your organisation</a>",
                escape(&percent_encode(page.return_to)),
                escape(issuer)
            )
        })
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Log in · Portico</title><style>{STYLE}</style></head><body><main>\
<h1>Log in to {tenant}</h1>{message}\
<form method=\"post\" action=\"/login\">\
<input type=\"hidden\" name=\"return\" value=\"{return_to}\">\
<label for=\"username\">User name</label>\
<input id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{user}\" autofocus>\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Log in</button></form>{external}</main></body></html>\n",
        tenant = escape(page.tenant),
        return_to = escape(page.return_to),
        user = escape(page.user_name),
    )
}

/// A short page for an error that must not redirect (e.g. an unknown OAuth client).
/// The page behind `GET /logout`: logging out is a POST from this page, so that another
/// site cannot log a user out with a mere link or image.
pub fn logout() -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Log out · Portico</title><style>{STYLE}</style></head><body><main>\
<h1>Log out</h1><form method=\"post\" action=\"/logout\">\
<button type=\"submit\" autofocus>Log out</button></form></main></body></html>\n"
    )
}

pub fn error(title: &str, detail: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · Portico</title>\
<style>{STYLE}</style></head><body><main><h1>{t}</h1><p>{d}</p></main></body></html>\n",
        t = escape(title),
        d = escape(detail)
    )
}

pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html = login(&LoginPage {
            tenant: "abc",
            return_to: "/\"><script>",
            user_name: "<b>",
            message: Some("<i>"),
            external_provider: None,
        });
        assert!(!html.contains("<script>") && !html.contains("<b>") && !html.contains("<i>"));
        assert!(!html.contains("/login/oidc"));
    }
}
