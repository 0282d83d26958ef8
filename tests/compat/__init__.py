"""The providers' own clients (pydo, huaweicloudsdkgaussdb) pointed at the sandbox served on a real port."""
