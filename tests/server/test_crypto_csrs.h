/*
 * CSRs for tests/server/test_crypto.c, made with the openssl command (OpenSSL 3.0) as each comment
 * says. All have the subject /CN=unit. The weak ones must be refused; the others accepted.
 */
#ifndef DAVIT_TEST_CRYPTO_CSRS_H
#define DAVIT_TEST_CRYPTO_CSRS_H

/* openssl req -new -newkey rsa:2048 -nodes -keyout k -subj /CN=unit */
static const char rsa2048_csr[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIICVDCCATwCAQAwDzENMAsGA1UEAwwEdW5pdDCCASIwDQYJKoZIhvcNAQEBBQAD\n"
    "ggEPADCCAQoCggEBAJ6MWLdnh7DVbtRFSUF2L3rIBD9pQMNOaQ1PvoY95djwrf3p\n"
    "SZEoHPzSX0RUJqKeXW3ih8BorWzFqkI7Bgi9LnBQMLhdNXbXgTIIztptWqkkas6T\n"
    "gGLXh7ppXm7GhAiMQMgt+l0a4NPUK2HbpeL0uGV1aBtTh/uDqHHOiULc+dv7TPHH\n"
    "oVAG78rYT1ICal1QSiCYSnOx3eXnbPMeT/vIsu49V6KKNbvo+ge4xpG9FNwl2zHd\n"
    "8toHB2kgd9oH502VCd0Is7E2xfjjHmXHuczIlG5yDx+3PhASaeyyMoeQ9jVw/g9V\n"
    "WQn6MfG1rb61g/+HuifVW/Yf4UgmhzwFVKyPu8sCAwEAAaAAMA0GCSqGSIb3DQEB\n"
    "CwUAA4IBAQCFjYIf1EQFP75R6DLuYlxJml4RAnQxIzz3IbRvK1iOOQ5mnS4Q4NXl\n"
    "bCH/ra42dIpR+moF/Is59OHhsIIZws6Px2MmkEyWOYMOnlWWtVd6AZnXyuHvKhDq\n"
    "6vEb4aqh4e/lCoaycDiiXWlsec9wZ1wII70Ja5NujkCqi4VYyTTNK9u4+K9s02AR\n"
    "ln2f5VRY0OoGm01nMfBvY3TgHX4S1TAg5bIyubAk353/kh0pk6tziN/qMOP+BIbk\n"
    "JSc35rUdxbNbmHQXNw9yezE/lD3Vm4LUSf2Mjp9yQwfFvIX9DunPCfIw/i5pHkxz\n"
    "f/xHOCx9SCW349nmo5Uh4lf/OKX59xnu\n"
    "-----END CERTIFICATE REQUEST-----\n";

/* openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k -subj /CN=unit */
static const char ec_p256_csr[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIHIMHECAQAwDzENMAsGA1UEAwwEdW5pdDBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
    "A0IABL/pM/hBnbYX0TAMDtrU/4ZWhayVfnbdZ2wLO00IFkQtxYNqOAaU8Xh7PVut\n"
    "rSNshxG87rBly0I7hAqac/exu+CgADAKBggqhkjOPQQDAgNHADBEAiBxT65oh4G3\n"
    "JZrTRqE9NsJccaSG65CiEqp/pIP3cO7czAIgV3F1yixuQxoQquRtdI3H2Js5N8hk\n"
    "5Cxvw4yvkZPH77I=\n"
    "-----END CERTIFICATE REQUEST-----\n";

/* openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:3 -out k;
 * openssl req -new -key k -subj /CN=unit */
static const char rsa_e3_csr[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIICUjCCAToCAQAwDzENMAsGA1UEAwwEdW5pdDCCASAwDQYJKoZIhvcNAQEBBQAD\n"
    "ggENADCCAQgCggEBANk8cWbOg+ofPwfouEtrK1Hftfa/4gGP5aPXfEnUuZu2uKxQ\n"
    "zdnObOfdi1TedhSVlCY47i4rAvN07K5+oSc623wxNMXYRjG3MTMGTCddK0hY+AnD\n"
    "nW4EN7wxedQffuBjDkXx0rFxf+KPsjEaLqnoA1e87arM+IsnEzaj90xf7m9TeXGe\n"
    "gWD9lPaNurj5PZM7PwMInAsSYQyODRXGIPrskFXZXEW+kR44BbTTueKpeIQr5UFL\n"
    "ZOSVritsFH9hwdLsRoIdCr6pZrNdrXZ4Npnuvbc32D0fM+l4I701YBw1sqDZLZ+1\n"
    "JvfYqPaue6bluAAWNUv7BE5qJpLTD11HkwH8EMkCAQOgADANBgkqhkiG9w0BAQsF\n"
    "AAOCAQEAtUWMPZlc4R3nbbRjzulVSdvLmcGCNOkq2WaEPdKLwrtGdOeP8c/L+dfk\n"
    "WKgrnBwTPDfyY49LSf3PaM4vRQZ17sLt/CZNJfsG+ugsab572im5IETAduTOsq61\n"
    "AwA0Q4CRmpUoQ/paqniMgFAJdduyZfaYu9Nqyo43OJB7WIMW4wdJCps6sSjNn2Mh\n"
    "gbsEOsA7kTPJES7h9ca0TNvSREzstsNX7YpjCGx8pnKJle+9dqPJraki5H37qvw5\n"
    "1CXTcHVwV4SEkHyIDDV8SiZuNBPYGhRIFyEn4U8n1oQrmT4zy+IkNwVC34W3veBD\n"
    "dHzJipbSb4KMHtIWAnVWjqEANOegzw==\n"
    "-----END CERTIFICATE REQUEST-----\n";

/* openssl req -new -newkey rsa:1024 -nodes -keyout k -subj /CN=unit */
static const char rsa1024_csr[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIIBTjCBuAIBADAPMQ0wCwYDVQQDDAR1bml0MIGfMA0GCSqGSIb3DQEBAQUAA4GN\n"
    "ADCBiQKBgQDTdYTQXr5c3CABS4m4Qk9EjnndXdz7K3xEIxuKoVqIWVpFLFyev+zy\n"
    "GKJhUuWSKtsYnAlwoFI734Lh76EJoG2EmrmQx93ojJWA2dH8rpiUEAOAJ3l4hkFE\n"
    "OtIhU/lpbler+C9h4N3czEePF6fAZcmTzoKwUE8hLY0GPTVVfK1x6QIDAQABoAAw\n"
    "DQYJKoZIhvcNAQELBQADgYEAyRltonHWAD4PAh+E3q5fWmXv52D2dcUCCLQHBCZy\n"
    "nCM3jIwzcLP0VGb9piIT/FrLHqgR13DpAUO4a9kyz78fBtP5OotO2GE1sg4CKOdS\n"
    "apC8To6Bf66GtLfACc+2QxGGF24xMK1oPE9r7kRu5fhwDUQGYS3PN/eeKzGM4Rne\n"
    "VZI=\n"
    "-----END CERTIFICATE REQUEST-----\n";

/* openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:explicit
 * -out k; openssl req -new -key k -subj /CN=unit */
static const char ec_explicit_csr[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIIBvjCCAWUCAQAwDzENMAsGA1UEAwwEdW5pdDCCAUswggEDBgcqhkjOPQIBMIH3\n"
    "AgEBMCwGByqGSM49AQECIQD/////AAAAAQAAAAAAAAAAAAAAAP//////////////\n"
    "/zBbBCD/////AAAAAQAAAAAAAAAAAAAAAP///////////////AQgWsY12Ko6k+ez\n"
    "671VdpiGvGUdBrDMU7D2O848PifSYEsDFQDEnTYIhucEk2pmeOETnSa3gZ9+kARB\n"
    "BGsX0fLhLEJH+Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT+NC4v4af5uO5+tKfA+e\n"
    "FivOM1drMV7Oy7ZAaDe/UfUCIQD/////AAAAAP//////////vOb6racXnoTzucrC\n"
    "/GMlUQIBAQNCAARhnrKxVZOuwA5lU58IhR148rVtxH2LkbdKCXq5KwBm/q9AFdJt\n"
    "i/iGfdytKz2St7F3ZeLFhb5a5waNuqj0El0coAAwCgYIKoZIzj0EAwIDRwAwRAIg\n"
    "SAm9cQsoogP7zBY88vvQrBxrhW5b1w8fAHFyjmgztDACIDCR4Q4KXzlD3RWd0XD+\n"
    "wb+bUlEWHbCsrJFI26P0Rk+H\n"
    "-----END CERTIFICATE REQUEST-----\n";

#endif
