// demo_cfa: two-level one-factor CFA of y1-y3 on lavaan's Demo.twolevel,
// Mplus default priors.
//   y_ij = nu + Lb fb_j + ub_j + Lw fw_ij + ew_ij
//   Lw = (1, lw2, lw3)', fw ~ N(0, psi_w), ew ~ N(0, diag(theta_w))
//   Lb = (1, lb2, lb3)', fb ~ N(0, psi_b), ub ~ N(0, diag(theta_b))
// so Sigma_w = Lw Lw' psi_w + diag(theta_w), Sigma_b = Lb Lb' psi_b + diag(theta_b).
// Everything latent is integrated out analytically (exact two-level normal
// likelihood): for cluster j of size n_j with mean ybar_j and within SSCP
// S_j = sum_i (y_ij - ybar_j)(y_ij - ybar_j)',
//   ybar_j ~ MVN(nu, Sigma_b + Sigma_w / n_j)   and
//   the n_j - 1 within contrasts are iid MVN(0, Sigma_w), contributing
//   -(n_j - 1)/2 log|Sigma_w| - 1/2 tr(Sigma_w^{-1} S_j).
// Pooled over clusters the within part needs only S_W = sum_j S_j.
// Priors (Mplus defaults): nu and loadings flat; all variances flat on the
// variance scale (IG(-1, 0)); no prior statements.
data {
  int<lower=1> J;              // clusters
  int<lower=1> N;              // observations
  int<lower=1> K;              // distinct cluster sizes
  vector<lower=1>[K] nk;       // the distinct sizes
  int<lower=1> first[K];       // clusters are sorted by size: group k is
  int<lower=1> count[K];       //   ybar[first[k] : first[k] + count[k] - 1]
  vector[3] ybar[J];           // cluster means (sorted by cluster size)
  matrix[3, 3] SW;             // pooled within-cluster SSCP
}
parameters {
  vector[3] nu;                // between: y1~1, y2~1, y3~1
  real lw2;                    // within: fw=~y2
  real lw3;                    // within: fw=~y3
  real<lower=0> psi_w;         // within: fw~~fw
  vector<lower=0>[3] theta_w;  // within: y1~~y1, y2~~y2, y3~~y3
  real lb2;                    // between: fb=~y2
  real lb3;                    // between: fb=~y3
  real<lower=0> psi_b;         // between: fb~~fb
  vector<lower=0>[3] theta_b;  // between: y1~~y1, y2~~y2, y3~~y3
}
model {
  vector[3] Lw = [1, lw2, lw3]';
  vector[3] Lb = [1, lb2, lb3]';
  matrix[3, 3] Sigma_w = psi_w * (Lw * Lw') + diag_matrix(theta_w);
  matrix[3, 3] Sigma_b = psi_b * (Lb * Lb') + diag_matrix(theta_b);
  // within part
  target += -0.5 * (N - J) * log_determinant(Sigma_w)
            - 0.5 * trace(mdivide_left_spd(Sigma_w, SW));
  // between part, one covariance matrix per distinct cluster size
  for (k in 1:K)
    ybar[first[k]:(first[k] + count[k] - 1)]
      ~ multi_normal(nu, Sigma_b + Sigma_w / nk[k]);
}
