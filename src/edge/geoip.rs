//! Viewer countries from a MaxMind (GeoIP2/GeoLite2 Country or City) database file.

use std::net::IpAddr;
use std::path::Path;

pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl GeoIp {
    pub fn open(path: &Path) -> Result<GeoIp, String> {
        maxminddb::Reader::open_readfile(path)
            .map(|reader| GeoIp { reader })
            .map_err(|e| format!("`{}` is not a readable MaxMind database: {e}", path.display()))
    }

    /// The ISO country code of `ip`, if the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip).ok()?;
        let country: maxminddb::geoip2::Country = found.decode().ok()??;
        country.country.iso_code.map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_the_test_database() {
        let geo = GeoIp::open(Path::new("tests/data/country-test.mmdb")).unwrap();
        assert_eq!(geo.country("127.0.0.1".parse().unwrap()).as_deref(), Some("FR"));
        assert_eq!(geo.country("10.1.2.3".parse().unwrap()).as_deref(), Some("DE"));
        assert_eq!(geo.country("::1".parse().unwrap()).as_deref(), Some("JP"));
        assert_eq!(geo.country("192.0.2.1".parse().unwrap()), None);
        assert!(GeoIp::open(Path::new("Cargo.toml")).is_err());
    }
}
