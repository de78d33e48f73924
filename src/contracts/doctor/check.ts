/**
 * One verdict of `sandbot doctor`. Its own module because the doctor's checks, the layer check and the
 * chat adapters' token checks all produce it.
 */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about it, when not ok. */
  fix?: string;
}
