"""TaurusDB service hosts per region (huaweicloudsdkgaussdb 3.1.219 `gaussdb_region.py`, 20 regions)."""

from __future__ import annotations

__all__ = ["REGIONS", "endpoint_for"]

REGIONS: dict[str, str] = {
    "cn-north-4": "gaussdb.cn-north-4.myhuaweicloud.com",
    "cn-southwest-2": "gaussdb.cn-southwest-2.myhuaweicloud.com",
    "cn-east-3": "gaussdb.cn-east-3.myhuaweicloud.com",
    "cn-south-1": "gaussdb.cn-south-1.myhuaweicloud.com",
    "ru-northwest-2": "gaussdb.ru-northwest-2.myhuaweicloud.com",
    "ap-southeast-3": "gaussdb.ap-southeast-3.myhuaweicloud.com",
    "cn-north-2": "gaussdb.cn-north-2.myhuaweicloud.com",
    "cn-north-9": "gaussdb.cn-north-9.myhuaweicloud.com",
    "tr-west-1": "gaussdbformysql.tr-west-1.myhuaweicloud.com",
    "ap-southeast-4": "gaussdb.ap-southeast-4.myhuaweicloud.com",
    "sa-brazil-1": "gaussdb.sa-brazil-1.myhuaweicloud.com",
    "ap-southeast-1": "gaussdbformysql.ap-southeast-1.myhuaweicloud.com",
    "ap-southeast-2": "gaussdbformysql.ap-southeast-2.myhuaweicloud.com",
    "af-south-1": "gaussdb-mysql.af-south-1.myhuaweicloud.com",
    "cn-south-4": "gaussdb.cn-south-4.myhuaweicloud.com",
    "cn-north-11": "gaussdbformysql.cn-north-11.myhuaweicloud.com",
    "cn-east-5": "gaussdb-mysql.cn-east-5.myhuaweicloud.com",
    "la-north-2": "gaussdb-mysql.la-north-2.myhuaweicloud.com",
    "cn-southwest-3": "gaussdb-mysql.cn-southwest-3.myhuaweicloud.com",
    "me-east-1": "gaussdbformysql.me-east-1.myhuaweicloud.com",
}


def endpoint_for(region: str) -> str:
    """`https://<host>` for a region of the table; KeyError for others (config validates first)."""
    return f"https://{REGIONS[region]}"
