//! The CloudFront-* viewer headers CloudFront adds after the viewer-request event (spec 3.3 and
//! 8): device type from User-Agent, the viewer's protocol and address, and the country.

/// What kind of device a User-Agent describes (one of them is true).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Device {
    pub mobile: bool,
    pub tablet: bool,
    pub smart_tv: bool,
    pub desktop: bool,
}

/// Classifies a User-Agent the way CloudFront's device headers do, from the well-known tokens.
pub fn device(user_agent: &str) -> Device {
    let ua = user_agent.to_ascii_lowercase();
    let has = |tokens: &[&str]| tokens.iter().any(|t| ua.contains(t));
    let smart_tv = has(&[
        "smart-tv",
        "smarttv",
        "googletv",
        "appletv",
        "hbbtv",
        "netcast",
        "tizen",
        "web0s",
        "webos",
        "bravia",
        "roku",
        "crkey",
        "aftb",
        "aftm",
        "android tv",
        "philipstv",
    ]);
    let tablet = !smart_tv
        && (has(&["ipad", "tablet", "kindle", "silk/", "playbook"])
            || (ua.contains("android") && !ua.contains("mobile")));
    let mobile = !smart_tv
        && !tablet
        && has(&[
            "mobi",
            "iphone",
            "ipod",
            "blackberry",
            "iemobile",
            "opera mini",
            "windows phone",
            "android",
        ]);
    Device {
        mobile,
        tablet,
        smart_tv,
        desktop: !(mobile || tablet || smart_tv),
    }
}

fn flag(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

/// The headers to add: name and value, in CloudFront's spelling.
pub fn headers(user_agent: &str, tls: bool, address: &str, country: Option<&str>) -> Vec<(&'static str, String)> {
    let device = device(user_agent);
    let mut out = vec![
        ("CloudFront-Is-Mobile-Viewer", flag(device.mobile).to_string()),
        ("CloudFront-Is-Tablet-Viewer", flag(device.tablet).to_string()),
        ("CloudFront-Is-SmartTV-Viewer", flag(device.smart_tv).to_string()),
        ("CloudFront-Is-Desktop-Viewer", flag(device.desktop).to_string()),
        (
            "CloudFront-Forwarded-Proto",
            if tls { "https" } else { "http" }.to_string(),
        ),
        ("CloudFront-Viewer-Address", address.to_string()),
    ];
    if let Some(country) = country
        .map(str::trim)
        .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
    {
        out.push(("CloudFront-Viewer-Country", country.to_ascii_uppercase()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
        assert_eq!(
            device(iphone),
            Device {
                mobile: true,
                ..Default::default()
            }
        );
        let pixel = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36";
        assert!(device(pixel).mobile);
        let ipad = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15";
        assert!(device(ipad).tablet);
        let android_tablet = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Chrome/120 Safari/537.36";
        assert!(device(android_tablet).tablet);
        let tv = "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36";
        assert_eq!(
            device(tv),
            Device {
                smart_tv: true,
                ..Default::default()
            }
        );
        let desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36";
        assert_eq!(
            device(desktop),
            Device {
                desktop: true,
                ..Default::default()
            }
        );
        assert!(device("").desktop);
    }

    #[test]
    fn header_values() {
        let h = headers("curl/8", true, "192.0.2.1:5555", Some("fr"));
        assert!(h.contains(&("CloudFront-Is-Desktop-Viewer", "true".into())));
        assert!(h.contains(&("CloudFront-Forwarded-Proto", "https".into())));
        assert!(h.contains(&("CloudFront-Viewer-Address", "192.0.2.1:5555".into())));
        assert!(h.contains(&("CloudFront-Viewer-Country", "FR".into())));
        assert!(!headers("curl/8", false, "x", Some("France"))
            .iter()
            .any(|(n, _)| *n == "CloudFront-Viewer-Country"));
    }
}
