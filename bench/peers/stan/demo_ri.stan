// demo_ri: random-intercept regression on lavaan's Demo.twolevel, Mplus
// default priors.
//   y1_ij = a_j + g1 x1_ij + g2 x2_ij + g3 x3_ij + e_ij,  e_ij ~ N(0, sigma2)
//   a_j   = g0 + h1 w1_j + h2 w2_j + u_j,                 u_j  ~ N(0, tau2)
// x1-x3 enter as observed values (within-only covariates, not centred);
// w1, w2 are cluster-level. Random intercepts a_j are centred.
// Priors (Mplus defaults): all coefficients flat; tau2 and sigma2 flat on
// the variance scale (IG(-1, 0)); no prior statements.
data {
  int<lower=1> N;
  int<lower=1> J;
  int<lower=1, upper=J> cl[N];
  vector[N] y;
  matrix[N, 3] X;              // x1, x2, x3
  matrix[J, 2] W;              // w1, w2 (one row per cluster)
}
parameters {
  vector[3] beta;              // within: y1~x1, y1~x2, y1~x3
  real g0;                     // between: y1~1
  vector[2] h;                 // between: y1~w1, y1~w2
  real<lower=0> sigma2;        // within: y1~~y1
  real<lower=0> tau2;          // between: y1~~y1
  vector[J] a;                 // centred random intercepts
}
model {
  a ~ normal(g0 + W * h, sqrt(tau2));
  y ~ normal(a[cl] + X * beta, sqrt(sigma2));
}
