//! CloudFront path patterns: `*` matches any run of characters (including `/`), `?` exactly one
//! character; everything else matches itself, case-sensitively. The pattern `*` matches every path.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
}

impl PathPattern {
    pub fn new(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("path pattern is empty".into());
        }
        if source != "*" && !source.starts_with('/') && !source.starts_with('*') {
            return Err(format!("path pattern `{source}` must start with `/` or `*`"));
        }
        if source.len() > 255 {
            return Err(format!("path pattern `{source}` is longer than 255 characters"));
        }
        Ok(PathPattern {
            source: source.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_default(&self) -> bool {
        self.source == "*"
    }

    /// Whether `path` (the URI path, without query) matches. Iterative glob matching with
    /// backtracking to the last `*`, linear in practice and never recursive.
    pub fn matches(&self, path: &str) -> bool {
        let pattern = self.source.as_bytes();
        let text = path.as_bytes();
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
                p += 1;
                t += 1;
            } else if p < pattern.len() && pattern[p] == b'*' {
                star = Some((p, t));
                p += 1;
            } else if let Some((star_p, star_t)) = star {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&c| c == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::PathPattern;

    fn matches(pattern: &str, path: &str) -> bool {
        PathPattern::new(pattern).unwrap().matches(path)
    }

    #[test]
    fn cloudfront_examples() {
        assert!(matches("*", "/anything/at/all"));
        assert!(matches("/static/*", "/static/css/site.css"));
        assert!(!matches("/static/*", "/Static/site.css"));
        assert!(!matches("/static/*", "/static"));
        assert!(matches("/images/*.jpg", "/images/a/b.jpg"));
        assert!(!matches("/images/*.jpg", "/images/a/b.png"));
        assert!(matches("/v?/api", "/v1/api"));
        assert!(!matches("/v?/api", "/v10/api"));
        assert!(matches("*.gif", "/x/y.gif"));
        assert!(matches("/exact", "/exact"));
        assert!(!matches("/exact", "/exact/"));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(PathPattern::new("").is_err());
        assert!(PathPattern::new("static/*").is_err());
    }
}
