"""Small display helpers."""


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1000, as file managers show)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} GB"
