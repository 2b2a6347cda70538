//! The login form: user name and password (or a robot's name and secret),
//! posted to the UI, which checks them as the token endpoint does.

use maud::{Markup, html};

use super::{Chrome, Section, layout};

pub fn login(chrome: &Chrome, next: &str, user: &str, error: Option<&str>) -> Markup {
    let body = html! {
        section.card.login {
            h1 { "Log in" }
            @if !chrome.access_control {
                p { "Access control is off: there is nothing to log in to, everyone may pull, push and delete." }
                p { a href="/ui/" { "← Repositories" } }
            } @else {
                p.hint { "Your registry credentials: an htpasswd user, or a robot's name and secret." }
                @if let Some(e) = error { p.error #login-error role="alert" { (e) } }
                form method="post" action="/ui/login" {
                    input type="hidden" name="csrf" value=(chrome.csrf);
                    input type="hidden" name="next" value=(next);
                    label for="username" { "User" }
                    input #username type="text" name="username" value=(user) autocomplete="username" required autofocus[user.is_empty()];
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required autofocus[!user.is_empty()];
                    button.primary #login-submit type="submit" { "Log in" }
                }
            }
        }
    };
    layout(chrome, Section::Login, "Log in", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::render::tests::chrome;

    #[test]
    fn the_form_carries_csrf_and_where_to_go_back() {
        let html = login(
            &chrome(),
            "/ui/r/a",
            "bob",
            Some("invalid username or password"),
        )
        .into_string();
        assert!(html.contains("name=\"next\" value=\"/ui/r/a\""), "{html}");
        assert!(html.contains("value=\"bob\""));
        assert!(html.contains("invalid username or password"));
        assert!(html.contains(&format!("name=\"csrf\" value=\"{}\"", "c".repeat(32))));
        assert!(
            !html.contains("name=\"password\" value"),
            "passwords are never echoed"
        );
        let mut open = chrome();
        open.access_control = false;
        assert!(
            login(&open, "/ui/", "", None)
                .into_string()
                .contains("Access control is off")
        );
    }
}
