"""GADF DL3 event lists: write (with hdu and obs index files) and read with ROI/GTI selection.

Files follow the GADF DL3 specification so that gammapy's ``DataStore`` opens them:
an EVENTS HDU (EVENT_ID, TIME, RA, DEC, ENERGY, plus GLON/GLAT and, for simulations,
MC truth columns) and a GTI HDU, with OBS_ID, TSTART/TSTOP, ONTIME, LIVETIME, DEADC,
RA_PNT/DEC_PNT, MJDREFI/MJDREFF, TIMESYS/TIMEUNIT/TIMEREF in the headers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import ROI, wrap_lon

__all__ = ["EventData", "EventFileError", "read_events", "write_events", "write_index",
           "MJDREFI", "MJDREFF"]

log = logging.getLogger(__name__)

# CTAO's time reference: 2001-01-01T00:00:00 TT
MJDREFI = 51910
MJDREFF = 7.428703703703703e-4
REQUIRED = ("ENERGY",)


class EventFileError(InputError, ValueError):
    """An event file that cannot be used; the message names the file."""


@dataclass
class EventData:
    """Reconstructed events of one observation (plain arrays).

    Attributes
    ----------
    energy : ndarray [TeV]
    l, b : ndarray [deg]
        Galactic coordinates (l wrapped to (-180, 180]).
    time : ndarray [s]
        Seconds since the reference MJDREFI + MJDREFF (TT).
    obs_id : int
    livetime_s, ontime_s : float
    gti : ndarray, shape (n, 2) [s]
    pointing : (l, b) [deg]
    mc : dict of ndarray, optional
        MC truth: ``component`` (index into ``mc_components``), ``energy``, ``l``, ``b``.
    n_read, n_cut_roi, n_cut_gti : int
        Events in the file and how many the selection removed.
    """

    energy: np.ndarray
    l: np.ndarray
    b: np.ndarray
    time: np.ndarray
    obs_id: int
    livetime_s: float
    ontime_s: float
    gti: np.ndarray
    pointing: tuple[float, float]
    mc: dict | None = None
    mc_components: list[str] = field(default_factory=list)
    n_read: int = 0
    n_cut_roi: int = 0
    n_cut_gti: int = 0
    source: str = ""
    site: str = "South"

    @property
    def n(self) -> int:
        return int(self.energy.size)

    @property
    def deadc(self) -> float:
        return self.livetime_s / self.ontime_s if self.ontime_s > 0 else 1.0

    def subset(self, mask) -> EventData:
        mc = None if self.mc is None else {k: v[mask] for k, v in self.mc.items()}
        return EventData(self.energy[mask], self.l[mask], self.b[mask], self.time[mask],
                         self.obs_id, self.livetime_s, self.ontime_s, self.gti, self.pointing,
                         mc, self.mc_components, self.n_read, self.n_cut_roi, self.n_cut_gti,
                         self.source, self.site)


def _radec(l, b):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(np.asarray(l) * u.deg, np.asarray(b) * u.deg, frame="galactic").icrs
    return c.ra.deg, c.dec.deg


def _galactic(ra, dec):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg, frame="icrs").galactic
    return wrap_lon(c.l.deg), c.b.deg


#: CTAO array centres (longitude, latitude [deg], height [m]) as gammapy 2.1 lists them
#: in `gammapy.data.observatory_locations` ("ctao_south", "ctao_north"); kept here so
#: that writing events does not import gammapy.data (2 s), and tested against it
CTAO_SITES = {"South": (-70.31634444444444, -24.68342777777777, 2150.0),
              "North": (-17.892005, 28.762164, 2147.0)}


def _site_keywords(site: str) -> dict:
    """GEOLON/GEOLAT/ALTITUDE of the CTAO site."""
    lon, lat, height = CTAO_SITES[site]
    return {"GEOLON": lon, "GEOLAT": lat, "ALTITUDE": height}


def write_events(path: str | Path, ev: EventData) -> Path:
    """Write a GADF DL3 event file (EVENTS + GTI)."""
    from astropy.io import fits

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ra, dec = _radec(ev.l, ev.b)
    ra_pnt, dec_pnt = (float(v) for v in _radec(*ev.pointing))
    cols = [
        fits.Column("EVENT_ID", "K", array=np.arange(1, ev.n + 1)),
        fits.Column("TIME", "D", unit="s", array=ev.time),
        fits.Column("RA", "D", unit="deg", array=ra),
        fits.Column("DEC", "D", unit="deg", array=dec),
        fits.Column("GLON", "D", unit="deg", array=np.mod(ev.l, 360.0)),
        fits.Column("GLAT", "D", unit="deg", array=ev.b),
        fits.Column("ENERGY", "D", unit="TeV", array=ev.energy),
    ]
    if ev.mc is not None:
        cols += [
            fits.Column("MC_COMPONENT", "I", array=ev.mc["component"]),
            fits.Column("MC_ENERGY", "D", unit="TeV", array=ev.mc["energy"]),
            fits.Column("MC_GLON", "D", unit="deg", array=np.mod(ev.mc["l"], 360.0)),
            fits.Column("MC_GLAT", "D", unit="deg", array=ev.mc["b"]),
        ]
    tstart, tstop = float(ev.gti[:, 0].min()), float(ev.gti[:, 1].max())
    common = {
        "HDUCLASS": "GADF", "HDUDOC": "https://gamma-astro-data-formats.readthedocs.io",
        "HDUVERS": "0.3", "OBS_ID": int(ev.obs_id), "TSTART": tstart, "TSTOP": tstop,
        "MJDREFI": MJDREFI, "MJDREFF": MJDREFF, "TIMEUNIT": "s", "TIMESYS": "TT",
        "TIMEREF": "LOCAL", "TELESCOP": "CTA", "INSTRUME": "gammadm simulation",
    }
    hdr = fits.Header()
    hdr.update({**common, "HDUCLAS1": "EVENTS", "EXTNAME": "EVENTS",
                "ONTIME": ev.ontime_s, "LIVETIME": ev.livetime_s, "DEADC": ev.deadc,
                "RA_PNT": ra_pnt, "DEC_PNT": dec_pnt, "EQUINOX": 2000.0, "RADECSYS": "ICRS",
                "OBS_MODE": "POINTING", "GLON_PNT": float(np.mod(ev.pointing[0], 360.0)),
                "GLAT_PNT": float(ev.pointing[1]), **_site_keywords(ev.site)})
    if ev.mc is not None:
        hdr["MC_COMPS"] = ",".join(ev.mc_components)
    if ev.source:  # an ingested selection: where it came from and what was cut
        hdr.update({"N_READ": ev.n_read, "N_CUTROI": ev.n_cut_roi, "N_CUTGTI": ev.n_cut_gti})
        hdr["SRC_FILE"] = Path(ev.source).name[:60]
    events = fits.BinTableHDU.from_columns(cols, header=hdr)
    gti = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", unit="s", array=ev.gti[:, 0]),
         fits.Column("STOP", "D", unit="s", array=ev.gti[:, 1])],
        header=fits.Header({**common, "HDUCLAS1": "GTI", "EXTNAME": "GTI"}))
    tmp = path.with_name(path.name + ".part")
    fits.HDUList([fits.PrimaryHDU(), events, gti]).writeto(tmp, overwrite=True)
    tmp.replace(path)
    return path


def write_index(folder: str | Path, event_files: list[Path], irf_file: Path | None) -> None:
    """hdu-index and obs-index files, so that gammapy's DataStore opens the folder."""
    from astropy.io import fits
    from astropy.table import Table

    folder = Path(folder)
    hdu_rows, obs_rows = [], []
    for f in event_files:
        f = Path(f)
        with fits.open(f) as hdul:
            h = hdul["EVENTS"].header
        obs_id = int(h["OBS_ID"])
        rel = f.resolve().relative_to(folder.resolve()) if f.resolve().is_relative_to(
            folder.resolve()) else f.resolve()
        entries = [("events", "events", rel, "EVENTS"), ("gti", "gti", rel, "GTI")]
        if irf_file is not None:
            irf = Path(irf_file).resolve()
            entries += [("aeff", "aeff_2d", irf, "EFFECTIVE AREA"),
                        ("edisp", "edisp_2d", irf, "ENERGY DISPERSION"),
                        ("psf", "psf_3gauss", irf, "POINT SPREAD FUNCTION"),
                        ("bkg", "bkg_3d", irf, "BACKGROUND")]
        for htype, hclass, fpath, hname in entries:
            fpath = Path(fpath)
            hdu_rows.append((obs_id, htype, hclass, str(fpath.parent) if str(fpath.parent) else ".",
                             fpath.name, hname))
        obs_rows.append((obs_id, h["RA_PNT"], h["DEC_PNT"], h["TSTART"], h["TSTOP"],
                         h["ONTIME"], h["LIVETIME"], h["DEADC"]))
    hdu = Table(rows=hdu_rows, names=("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR",
                                      "FILE_NAME", "HDU_NAME"))
    hdu.meta.update({"HDUCLASS": "GADF", "HDUDOC": "https://gamma-astro-data-formats.readthedocs.io",
                     "HDUVERS": "0.3", "HDUCLAS1": "INDEX", "HDUCLAS2": "HDU",
                     "EXTNAME": "HDU_INDEX", "BASE_DIR": "."})
    obs = Table(rows=obs_rows, names=("OBS_ID", "RA_PNT", "DEC_PNT", "TSTART", "TSTOP",
                                      "ONTIME", "LIVETIME", "DEADC"))
    obs.meta.update({"HDUCLASS": "GADF", "HDUVERS": "0.3", "HDUCLAS1": "INDEX",
                     "HDUCLAS2": "OBS", "EXTNAME": "OBS_INDEX", "MJDREFI": MJDREFI,
                     "MJDREFF": MJDREFF, "TIMESYS": "TT", "TIMEUNIT": "s"})
    hdu.write(folder / "hdu-index.fits.gz", format="fits", overwrite=True)
    obs.write(folder / "obs-index.fits.gz", format="fits", overwrite=True)


def read_events(path: str | Path, roi: ROI | None = None, strict_roi: bool = False,
                pointing: tuple[float, float] | None = None) -> EventData:
    """Read a GADF DL3 event list; select events inside the closed ROI and the GTIs.

    Fails (one message naming the file) on a POINT-LIKE file, missing columns, zero
    remaining events, or, with ``strict_roi``, events outside the ROI.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        hdul = fits.open(path)
    except (OSError, FileNotFoundError) as exc:
        raise EventFileError(f"{path}: cannot open as FITS ({exc})") from None
    with hdul:
        for hdu in hdul[1:]:
            if (str(hdu.header.get("HDUCLAS3", "")).strip().upper() == "POINT-LIKE"
                    or hdu.name.upper() == "RAD_MAX"):
                raise EventFileError(f"{path}: POINT-LIKE data (HDU {hdu.name}); this "
                                     "full-enclosure analysis needs FULL-ENCLOSURE events")
        if "EVENTS" not in hdul:
            raise EventFileError(f"{path}: no EVENTS HDU")
        h = hdul["EVENTS"].header
        data = hdul["EVENTS"].data
        names = [c.upper() for c in (data.columns.names if data is not None else [])]
        missing = [c for c in REQUIRED if c not in names]
        has_gal = "GLON" in names and "GLAT" in names
        has_eq = "RA" in names and "DEC" in names
        if not (has_gal or has_eq):
            missing.append("RA/DEC or GLON/GLAT")
        if missing:
            raise EventFileError(f"{path}: EVENTS lacks column(s) {', '.join(missing)}")
        unit = (data.columns["ENERGY"].unit or "TeV").strip()
        scale = {"TeV": 1.0, "GeV": 1e-3, "MeV": 1e-6}.get(unit)
        if scale is None:
            raise EventFileError(f"{path}: ENERGY unit '{unit}' not understood")
        energy = np.asarray(data["ENERGY"], float) * scale
        if has_gal:
            l, b = wrap_lon(np.asarray(data["GLON"], float)), np.asarray(data["GLAT"], float)
        else:
            l, b = _galactic(data["RA"], data["DEC"])
        time = np.asarray(data["TIME"], float) if "TIME" in names else np.zeros(energy.size)
        if "GTI" in hdul:
            g = hdul["GTI"].data
            gti = np.stack([np.asarray(g["START"], float), np.asarray(g["STOP"], float)], 1)
        else:
            gti = np.array([[h.get("TSTART", -np.inf), h.get("TSTOP", np.inf)]], float)
        mc = None
        comps: list[str] = []
        if "MC_COMPONENT" in names:
            mc = {"component": np.asarray(data["MC_COMPONENT"], int),
                  "energy": np.asarray(data["MC_ENERGY"], float),
                  "l": wrap_lon(np.asarray(data["MC_GLON"], float)),
                  "b": np.asarray(data["MC_GLAT"], float)}
            comps = str(h.get("MC_COMPS", "")).split(",")
        ontime = float(h.get("ONTIME", gti[:, 1].sum() - gti[:, 0].sum()))
        livetime = float(h.get("LIVETIME", ontime * float(h.get("DEADC", 1.0))))
        if pointing is None:
            if "GLON_PNT" in h:
                pointing = (float(wrap_lon(h["GLON_PNT"])), float(h["GLAT_PNT"]))
            elif "RA_PNT" in h:
                pl, pb = _galactic(h["RA_PNT"], h["DEC_PNT"])
                pointing = (float(pl), float(pb))
            else:
                raise EventFileError(f"{path}: no pointing (RA_PNT/DEC_PNT) in the EVENTS header")
        ev = EventData(energy, l, b, time, int(h.get("OBS_ID", 0)), livetime, ontime, gti,
                       pointing, mc, comps, n_read=energy.size, source=str(path))
    in_gti = np.zeros(ev.n, bool)
    for start, stop in ev.gti:
        in_gti |= (ev.time >= start) & (ev.time <= stop)
    in_roi = roi.contains(ev.energy, ev.l, ev.b) if roi is not None else np.ones(ev.n, bool)
    if strict_roi and not in_roi.all():
        raise EventFileError(f"{path}: {int((~in_roi).sum())} events outside the ROI "
                             "(roi.strict is true)")
    keep = in_gti & in_roi
    ev = ev.subset(keep)
    ev.n_cut_gti = int((~in_gti).sum())
    ev.n_cut_roi = int((in_gti & ~in_roi).sum())
    if "N_READ" in h:  # a selection made at ingestion: count from the original file
        ev.n_read = int(h["N_READ"])
        ev.n_cut_roi += int(h.get("N_CUTROI", 0))
        ev.n_cut_gti += int(h.get("N_CUTGTI", 0))
    if ev.n == 0:
        raise EventFileError(f"{path}: no events left inside the ROI and GTIs "
                             f"({ev.n_read} read, {ev.n_cut_roi} outside the ROI, "
                             f"{ev.n_cut_gti} outside the GTIs)")
    if ev.n_cut_roi or ev.n_cut_gti:
        log.info("%s: kept %d of %d events (%d outside the ROI, %d outside the GTIs)",
                 path.name, ev.n, ev.n_read, ev.n_cut_roi, ev.n_cut_gti)
    return ev
