"""Small labelled papers for the learning tests: segmentation papers readers like (medical) and
dislike (satellite images), written here, not taken from any dataset."""
from __future__ import annotations

MEDICAL = ["CT scans of the liver", "MRI of brain tumours", "ultrasound of the fetal heart", "retinal fundus photographs",
           "histology slides of the colon", "cardiac MRI sequences", "chest X-ray radiographs", "prostate MRI volumes"]
SATELLITE = ["satellite images of farmland", "aerial images of cities", "remote sensing images of forests",
             "satellite radar scenes of coastlines", "aerial drone images of roads", "remote sensing images of crops",
             "satellite images of glaciers", "aerial images of rooftops"]


def paper(pid: str, title: str, abstract: str) -> dict:
    return {"id": pid, "title": title, "abstract": abstract, "authors": ["A. Author"], "categories": ["cs.CV"]}


def medical(i: int, prefix: str = "m") -> dict:
    what = MEDICAL[i % len(MEDICAL)]
    return paper(f"2601.{prefix}{i:04d}" if prefix != "m" else f"2601.1{i:04d}",
                 f"Image segmentation of {what}",
                 f"We segment organs and lesions in {what} for clinical diagnosis of patients. "
                 f"Our network improves Dice on hospital radiology data and helps radiologists.")


def satellite(i: int) -> dict:
    what = SATELLITE[i % len(SATELLITE)]
    return paper(f"2601.2{i:04d}", f"Image segmentation of {what}",
                 f"We segment land cover in {what} for earth observation and mapping. "
                 f"Our network improves mIoU on geospatial benchmarks of the planet surface.")


def quantization(i: int) -> dict:
    return paper(f"2601.3{i:04d}", f"Post-training quantization of vision transformers {i}",
                 "We quantize weights and activations to four bits with little accuracy loss on ImageNet.")


def feedback() -> list[dict]:
    """Votes: medical segmentation papers relevant, satellite ones not."""
    out = [{"paper": medical(i), "topic": "segmentation", "relevant": True} for i in range(6)]
    out += [{"paper": satellite(i), "topic": "segmentation", "relevant": False} for i in range(6)]
    return out


def unseen() -> list[dict]:
    """New papers of both kinds (texts the votes never saw)."""
    return [medical(i) for i in range(6, 8)] + [satellite(i) for i in range(6, 8)]
